"""``scfront dictionary learn|show|compare``.

Heavy modules (torch, scikit-learn, matplotlib, the data loaders) are imported inside the
handlers so that ``scfront --help`` stays instant.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from scfront.cli_options import (add_data_root_argument, device_option, output_file, output_folder,
                                 resolve_data_root)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dictionary", help="learn, inspect and compare patch dictionaries",
        description="Learn, inspect and compare patch dictionaries (docs/method.md §1).",
    )
    commands = parser.add_subparsers(dest="dictionary_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: parser.error("choose an action: learn, show or compare"))

    learn = commands.add_parser(
        "learn", help="learn a dictionary from training patches",
        description="Learn a dictionary from patches of the training split and write an npz. "
                    "Defaults per dataset: cifar10 500 atoms 4x4 stride 2 alpha 1.0 1000 steps; "
                    "imagenette (160x160) 1000 atoms 8x8 stride 4 alpha 0.5 10000 steps.",
    )
    learn.add_argument("--method", choices=("faithful", "fast"), default="faithful",
                       help="faithful: the original scikit-learn recipe; fast: the torch learner")
    learn.add_argument("--dataset", choices=("cifar10", "imagenette"), default="cifar10")
    add_data_root_argument(learn)
    learn.add_argument("--out", type=output_file, required=True, help="npz file to write")
    learn.add_argument("--atoms", type=int, default=None, help="number of atoms")
    learn.add_argument("--patch-size", type=int, default=None)
    learn.add_argument("--stride", type=int, default=None, help="grid step of training patches")
    learn.add_argument("--alpha", type=float, default=None, help="lasso penalty")
    learn.add_argument("--steps", type=int, default=None,
                       help="mini-batch steps (faithful default: the dataset's; fast: 400)")
    learn.add_argument("--batch-size", type=int, default=None,
                       help="patches per step (faithful: 5; fast: 2048)")
    learn.add_argument("--fista-iterations", type=int, default=None, help="fast learner only")
    learn.add_argument("--image-size", type=int, default=None, help="imagenette only (160)")
    learn.add_argument("--seed", type=int, default=0)
    learn.add_argument("--device", type=device_option, default="cpu",
                       help="fast learner only: torch device")
    learn.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    learn.add_argument("--plot", type=output_file, default=None, help="also save the atom grid PNG")
    learn.set_defaults(handler=_learn)

    show = commands.add_parser(
        "show", help="statistics and atom grid of a dictionary",
        description="Print statistics of a dictionary (a shipped name, dct4, or an npz path); "
                    "with --data-root also the held-out sparse coding objective.",
    )
    show.add_argument("dictionary", help="name (cifar10, cifar10_fast, imagenette, dct4) or npz")
    show.add_argument("--plot", type=output_file, default=None, help="save the atom grid as this PNG")
    add_data_root_argument(show)
    show.add_argument("--dataset", choices=("cifar10", "imagenette"), default=None,
                      help="held-out data (default: from the patch size, 8 -> imagenette)")
    show.add_argument("--n-patches", type=int, default=2000, help="held-out patches (LARS)")
    show.add_argument("--alpha", type=float, default=None, help="lasso penalty (dataset's)")
    show.add_argument("--seed", type=int, default=0)
    show.set_defaults(handler=_show)

    compare = commands.add_parser(
        "compare", help="compare dictionaries on the same held-out patches",
        description="Measure dictionaries on the same seeded held-out patches and write "
                    "comparison.json and comparison.md.",
    )
    compare.add_argument("dictionaries", nargs="+", metavar="[LABEL=]DICT",
                         help="dictionaries to compare (names or npz paths), optionally labelled")
    add_data_root_argument(compare)
    compare.add_argument("--dataset", choices=("cifar10", "imagenette"), default="cifar10")
    compare.add_argument("--n-patches", type=int, default=20_000)
    compare.add_argument("--alpha", type=float, default=None)
    compare.add_argument("--stride", type=int, default=None)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--out-dir", type=output_folder, default="results/dictionaries",
                         help="folder of comparison.json and comparison.md (created)")
    compare.set_defaults(handler=_compare)


def _command_line(args: argparse.Namespace, action: str) -> str:
    """The command as it would be typed again, from the parsed options (argv may not exist when
    the CLI is called from Python). An absolute data root is replaced by ``$SCFRONT_DATA`` so
    that no machine-specific path ends up in a shipped file."""
    skip = {"handler", "command", "dictionary_command", "verbose", "quiet", "dictionaries",
            "dictionary"}
    words = ["scfront", "dictionary", action]
    positional = getattr(args, "dictionaries", None) or (
        [args.dictionary] if getattr(args, "dictionary", None) else [])
    words += [str(p) for p in positional]
    for key, value in vars(args).items():
        if key in skip or value is None:
            continue
        if key == "data_root" and Path(value).is_absolute():
            value = "$SCFRONT_DATA"
        words += [f"--{key.replace('_', '-')}", str(value)]
    return " ".join(shlex.quote(w) if w != "$SCFRONT_DATA" else w for w in words)


def _given(value: Any, default: Any) -> Any:
    """The option's value when given (0 included, so that settings can reject it), else the
    dataset's default."""
    return default if value is None else value


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _learn(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from scfront.dictionary.npz import save_dictionary
    from scfront.dictionary.sources import DEFAULTS, PatchDataset, load_images

    _set_threads(args.threads)
    dataset = PatchDataset(args.dataset)
    base = DEFAULTS[dataset]
    common = {
        "n_atoms": _given(args.atoms, base.n_atoms),
        "patch_size": _given(args.patch_size, base.patch_size),
        "stride": _given(args.stride, base.stride),
        "alpha": _given(args.alpha, base.alpha),
        "seed": args.seed,
    }
    if args.method == "faithful":
        from scfront.dictionary.faithful import FaithfulSettings, learn_faithful

        settings: Any = FaithfulSettings(steps=_given(args.steps, base.faithful_steps),
                                         batch_size=_given(args.batch_size, 5), **common)
        learner: Any = learn_faithful
    else:
        from scfront.dictionary.fast import FastSettings, learn_fast

        extra = {"steps": args.steps, "batch_size": args.batch_size,
                 "fista_iterations": args.fista_iterations}
        settings = FastSettings(device=args.device, **common,
                                **{k: v for k, v in extra.items() if v is not None})
        learner = learn_fast
    images = load_images(dataset, resolve_data_root(args.data_root), base.train_split,
                         args.image_size)
    with tqdm(total=settings.steps, desc=f"learning ({args.method})", unit="step") as bar:
        dictionary = learner(images, settings, progress=bar.update)
    dictionary.meta.update({
        "dataset": dataset.value, "split": base.train_split, "n_images": int(images.shape[0]),
        "image_size": int(images.shape[-1]),
        "command": _command_line(args, "learn"),
    })
    save_dictionary(dictionary, args.out)
    print(f"wrote {args.out}: {dictionary.n_atoms} atoms of {dictionary.patch_size}x"
          f"{dictionary.patch_size}x{dictionary.channels} in {dictionary.meta['seconds']:.1f} s")
    if args.plot is not None:
        from scfront.dictionary.plot import plot_atoms

        plot_atoms(dictionary, args.plot, title=f"{args.out.name} ({args.method})")
        print(f"wrote {args.plot}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from scfront.dictionary.metrics import dictionary_stats, heldout_objective
    from scfront.dictionary.registry import get_dictionary
    from scfront.dictionary.sources import DEFAULTS, PatchDataset, heldout_patches

    dictionary = get_dictionary(args.dictionary)
    stats = dictionary_stats(dictionary)
    print(f"dictionary   {args.dictionary}")
    print(f"atoms        {stats.n_atoms} of {stats.patch_size}x{stats.patch_size}x{stats.channels}"
          f" (dim {dictionary.dim})")
    print(f"method       {dictionary.meta.get('method', 'unknown')}")
    print(f"L1 norms     {stats.l1_min:.4f} .. {stats.l1_max:.4f}")
    print(f"L2 norms     {stats.l2_min:.4f} .. {stats.l2_max:.4f}")
    print(f"coherence    {stats.coherence:.6f}")
    print(f"flat atoms   {stats.flat_atoms} (|cos| > 0.9 with the constant patch)")
    print(f"duplicates   {stats.near_duplicates} (atoms with another atom at |cos| > 0.99)")
    if args.data_root is not None:
        name = args.dataset or ("imagenette" if dictionary.patch_size == 8 else "cifar10")
        dataset = PatchDataset(name)
        base = DEFAULTS[dataset]
        alpha = _given(args.alpha, base.alpha)
        patches = heldout_patches(dataset, resolve_data_root(args.data_root),
                                  dictionary.patch_size, base.stride, args.n_patches, args.seed)
        result = heldout_objective(dictionary, patches, alpha)
        print(f"held-out     {result.objective:.4f} = 0.5 residual^2 {result.reconstruction:.4f}"
              f" + {alpha} x L1 {result.l1:.4f} (non-zeros {result.nonzeros:.2f}; "
              f"{result.n_patches} {dataset.value} {base.heldout_split} patches, LARS)")
    if args.plot is not None:
        from scfront.dictionary.plot import plot_atoms

        plot_atoms(dictionary, args.plot, title=str(args.dictionary))
        print(f"wrote {args.plot}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from scfront.dictionary.compare import measure, write_comparison
    from scfront.dictionary.registry import get_dictionary
    from scfront.dictionary.sources import DEFAULTS, PatchDataset, heldout_patches
    from scfront.errors import InputError

    dataset = PatchDataset(args.dataset)
    base = DEFAULTS[dataset]
    dictionaries = {}
    for spec in args.dictionaries:
        label, _, source = spec.rpartition("=")
        dictionaries[label or source] = get_dictionary(source)
    sizes = {d.patch_size for d in dictionaries.values()}
    if len(sizes) != 1:
        raise InputError(f"dictionaries of different patch sizes {sorted(sizes)} cannot share "
                         "held-out patches")
    patch_size = sizes.pop()
    stride = _given(args.stride, base.stride)
    alpha = _given(args.alpha, base.alpha)
    patches = heldout_patches(dataset, resolve_data_root(args.data_root), patch_size, stride,
                              args.n_patches, args.seed)
    rows = measure(dictionaries, patches, alpha)
    context = {
        "dataset": dataset.value, "split": base.heldout_split, "n_patches": int(patches.shape[0]),
        "patch_size": patch_size, "stride": stride, "alpha": alpha, "seed": args.seed,
        "solver": "sklearn lasso_lars (exact)",
        "command": _command_line(args, "compare"),
    }
    json_path, md_path = write_comparison(rows, context, args.out_dir)
    for row in rows:
        print(f"{row['label']:>14}: objective {row['heldout']['objective']:.4f}, coherence "
              f"{row['stats']['coherence']:.6f}, flat atoms {row['stats']['flat_atoms']}")
    print(f"wrote {json_path} and {md_path}")
    return 0
