"""``scfront evaluate`` and ``scfront evaluate-merge``.

Heavy modules (torch, the attacks) are imported when a command runs, or when ``--help`` lists
the attacks (the list is generated from the registry's docstrings and defaults).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_ATTACKS_MARKER = "@@ATTACK-LIST@@"


def attack_help() -> str:
    """One entry per registered attack: first docstring line, then its parameters and defaults."""
    import textwrap

    import dataclasses
    import enum

    from scfront.attacks.registry import attack_class, available_attacks, create_attack
    from scfront.attacks.registry import attack_parameters
    from scfront.evaluation.suite import SUITES

    lines = ["attacks (override a parameter with NAME:KEY=VALUE, e.g. square:queries=1000;",
             "eps=None means the paper's radius for the norm: Linf 8/255, L2 0.6; bpda=None means",
             "the model's own BPDA rules, set them with top_u=U:steepness=S, 0 = identity):"]
    for name in available_attacks():
        cls = attack_class(name)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"  {name:<15} {summary}")
        declared = attack_parameters(name)
        params = []
        for key, default in declared.items():
            if default is dataclasses.MISSING:
                continue
            value = default.value if isinstance(default, enum.Enum) else default
            params.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        prefix = ""
        if "norm" not in declared and dataclasses.MISSING not in declared.values():
            prefix = f"norm {create_attack(name).threat.norm.value}; "  # a norm fixed by the class
        if params or prefix:
            lines.append(textwrap.fill(prefix + ", ".join(params), width=96, initial_indent=" " * 18,
                                       subsequent_indent=" " * 18))

    lines += ["", "named suites (--attacks @NAME; mixes with single attacks, e.g. pgd-linf,@long):"]
    for name, (items, description) in SUITES.items():
        lines.append(f"  @{name:<14} {', '.join(items)}")
        lines.append(textwrap.fill(description, width=96, initial_indent=" " * 18, subsequent_indent=" " * 18))
    return "\n".join(lines + ["", check_help()])


def check_help() -> str:
    """One entry per registered self-check: its name, default or opt-in, images, first docstring line."""
    import textwrap

    from scfront.evaluation import protocol  # noqa: F401  (imports the modules that register checks)
    from scfront.evaluation.checks import available_checks, check_class

    lines = ["self-checks (--checks LIST; 'before attacks': a failure stops the evaluation first):"]
    for name in available_checks():
        cls = check_class(name)
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        kind = "default" if cls.default else "opt-in"
        images = ("the results" if cls.from_results else
                  "all check images" if cls.budget is None else f"{cls.budget} images")
        when = ", before attacks" if cls.before_attacks else ""
        lines.append(f"  {name:<21} [{kind}, {images}{when}]")
        lines.append(textwrap.fill(summary, width=96, initial_indent=" " * 23, subsequent_indent=" " * 23))
    return "\n".join(lines)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Fills in the attack list only when the full help is printed (not for usage errors)."""

    def add_text(self, text: str | None) -> None:
        if text == _ATTACKS_MARKER:
            text = attack_help()
        super().add_text(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    from scfront.cli_options import add_data_root_argument, add_device_argument, output_folder

    p = subparsers.add_parser(
        "evaluate", help="attack a model with a suite of attacks and write results.json/report.md",
        formatter_class=_Formatter, epilog=_ATTACKS_MARKER,
        description=(
            "Evaluate MODEL on a fixed seeded subset of the test set: the clean accuracy, then each "
            "attack in order (AutoAttack cascade: each only on the points still robust), the "
            "per-example worst case, timings, gradient-masking checks. Writes OUT/results.json, "
            "OUT/report.md and OUT/adversarials.safetensors; OUT/state/ makes the run resumable "
            "(rerun the same command after an interruption) and shardable (--shard i/n, then "
            "evaluate-merge, or the same --out for every shard; or `torchrun --nproc_per_node=K "
            "--no-python scfront evaluate ...`: rank r computes shard r/K, rank 0 collects the "
            "units and writes the results)."),
    )
    p.add_argument("model", metavar="MODEL",
                   help="anything scfront.load takes: a model saved by scfront (folder or "
                        "model.safetensors), a .pt checkpoint of the original ResNet-32, a shipped "
                        "model's name (cifar10_cpu), or package.module:factory (see --weights)")
    p.add_argument("--weights", type=Path, default=None, metavar="FILE",
                   help="for MODEL=package.module:factory: a safetensors file or .pt state_dict "
                        "loaded into the factory's model (keys and shapes must match)")
    add_data_root_argument(p)
    p.add_argument("--dataset", choices=["cifar10", "imagenette"], default="cifar10",
                   help="test set (default: cifar10; imagenette uses its val split)")
    p.add_argument("--image-size", type=int, default=None,
                   help="Imagenette image size (default: 160, the presets' size)")
    p.add_argument("--attacks", action="append", default=[], metavar="LIST",
                   help="comma-separated attack names in order, each optionally NAME:KEY=VALUE:... "
                        "or @SUITE for a named suite (repeatable: one cascade); see the lists below")
    p.add_argument("--column", action="append", default=[], metavar="LABEL=LIST",
                   help="instead of --attacks: a column of attacks (LIST as for --attacks) that is a "
                        "cascade of its own; repeat for more columns. Results add each column's "
                        "accuracy (per-example worst case over its attacks); the worst case and the "
                        "checks cover every column (e.g. --column pgd=pgd-linf --column bb=square)")
    p.add_argument("--n-images", type=int, default=1000, help="size of the subset (default: 1000)")
    p.add_argument("--subset-seed", type=int, default=0,
                   help="seed of the subset randperm(len(test), seed)[:N] (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the attacks' randomness (default: 0)")
    p.add_argument("--out", type=output_folder, required=True, help="output folder (created; reused to resume)")
    group = p.add_argument_group("suite-wide attack parameters (applied to every attack that has "
                                 "the parameter; NAME:KEY=VALUE wins)")
    group.add_argument("--eps", type=str, default=None, help="radius, e.g. 8/255 or 0.5")
    group.add_argument("--steps", type=int, default=None, help="iterations")
    group.add_argument("--restarts", type=int, default=None, help="random restarts (worst case kept)")
    group.add_argument("--top-u", type=int, default=None,
                       help="BPDA top-U at attack time (0: identity through top-T; with only "
                            "--steepness given: the paper's 30)")
    group.add_argument("--steepness", type=float, default=None,
                       help="BPDA tanh steepness at attack time (0: identity through the activation; "
                            "with only --top-u given: the paper's 4)")
    group.add_argument("--eot-samples", type=int, default=None, help="EOT gradient samples per step")
    rand = p.add_argument_group("randomised models (test-time noise or dropout)")
    rand.add_argument("--ensemble", type=int, default=None, metavar="E",
                      help="evaluate the model averaged over E forward passes (log of the mean softmax; "
                           "default: as its model card says; 1: the single network)")
    rand.add_argument("--model-seed", type=int, default=None, metavar="S",
                      help="seed of a randomised model's own noise, reseeded per unit of work and recorded "
                           "in spec.json, apart from --seed (the attacks'); default 0; refused for a "
                           "deterministic model")
    p.add_argument("--batch-size", type=int, default=250, help="images per unit of work (default: 250)")
    add_device_argument(p)
    p.add_argument("--no-cascade", action="store_true",
                   help="run every attack on every correctly classified point (standalone accuracies)")
    p.add_argument("--attack-model", choices=("auto", "fold", "jit", "compile", "plain"), default="auto",
                   help="the copy of the model the attacks run on: auto/fold = BatchNorm folded into the "
                        "convolutions, checked against the model (default); plain = the model itself. "
                        "The clean pass and every verdict use the model itself (docs/evaluation.md §6)")
    p.add_argument("--no-rebatch", action="store_true",
                   help="attack each batch's remaining points on their own instead of gathering them "
                        "into full batches (same results, slower)")
    p.add_argument("--shard", default="0/1", metavar="i/n",
                   help="compute only batches b with b %% n == i (default: 0/1, everything)")
    p.add_argument("--checks", default="default", metavar="LIST",
                   help="comma-separated self-checks to run: names, NAME:images=K (its own number of "
                        "images), 'default' (the default checks) or 'all'; e.g. --checks "
                        "default,more-steps:images=100 (default: the default checks; see the list below)")
    p.add_argument("--no-checks", action="store_true",
                   help="run no self-check (the model is still validated before any attack: it must "
                        "take the images and return logits, one per class)")
    p.add_argument("--check-images", type=int, default=100,
                   help="images the checks may use: the first of the subset; each check uses at most "
                        "its own budget of them (default: 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=_evaluate)

    m = subparsers.add_parser(
        "evaluate-merge", help="combine the shards of an evaluation into one results.json",
        description="Merge the OUT folders of `scfront evaluate --shard i/n` runs (same settings) "
                    "into one evaluation; the results equal those of a single run.",
    )
    m.add_argument("shards", metavar="SHARD_DIR", type=Path, nargs="+", help="the shards' --out folders")
    m.add_argument("--out", type=output_folder, required=True, help="folder of the merged evaluation")
    m.set_defaults(handler=_merge)

    from scfront.evaluation.compare import register_commands

    register_commands(subparsers)  # evaluate-compare, evaluate-repredict


def _image_size(args: argparse.Namespace) -> int:
    """Side of the test images: CIFAR-10's 32, Imagenette's --image-size (default 160)."""
    return 32 if args.dataset == "cifar10" else (args.image_size or 160)


def _suite_attacks(attacks: Any) -> list[Any]:
    """The attacks of a suite or of {column: attacks}, in order."""
    return [a for column in attacks.values() for a in column] if isinstance(attacks, dict) else list(attacks)


def _validate_on_probe(model: Any, args: argparse.Namespace, device: Any, attacks: list[Any]) -> None:
    """:func:`~scfront.evaluation.checks.validate_model` on 4 seeded uniform images of the
    dataset's shape, label 0, with the dataset's class count (before the data are read)."""
    import torch

    from scfront.data.layout import CIFAR10_CLASSES, IMAGENETTE_CLASSES
    from scfront.evaluation.checks import validate_model

    size = _image_size(args)
    classes = len(CIFAR10_CLASSES if args.dataset == "cifar10" else IMAGENETTE_CLASSES)
    probe = torch.rand((4, 3, size, size), generator=torch.Generator().manual_seed(0)).to(device)
    validate_model(model, probe, torch.zeros(4, dtype=torch.int64, device=device), attacks, classes)


def _load_test_set(args: argparse.Namespace) -> Any:
    from scfront.cli_options import resolve_data_root
    from scfront.config import DataConfig, DatasetName
    from scfront.data import load_dataset

    root = resolve_data_root(args.data_root)
    size = _image_size(args)
    return load_dataset(DataConfig(dataset=DatasetName(args.dataset), image_size=size), root, "test")


def _print_results(results: dict[str, Any], out: Path) -> None:
    print(f"clean accuracy {100 * results['clean_accuracy']:.2f} %")
    for a in results["attacks"]:
        extra = ""
        if "unconstrained" in a and a["unconstrained"]["median_norm"] is not None:
            extra = f", median unconstrained {a['norm']} norm {a['unconstrained']['median_norm']:.4g}"
        column = f"[{a['column']}] " if "column" in a else ""
        print(f"  {column}{a['name']:<15} robust {100 * a['robust_accuracy']:.2f} %  ({a['seconds']:.1f} s{extra})")
    for label, c in results.get("columns", {}).items():
        print(f"  column {label}: {100 * c['accuracy']:.2f} %")
    print(f"worst case {100 * results['worst_case_accuracy']:.2f} %")
    for name, check in results["checks"].items():
        seconds = f" ({check['seconds']:.1f} s)" if "seconds" in check else ""
        print(f"  check {name}: {'passed' if check['passed'] else 'FAILED'}{seconds} - {check['detail']}")
    if results["checks"]:
        print(f"attacks {results['attack_seconds']:.1f} s, checks {results['check_seconds']:.1f} s")
    print(f"results in {out}")


def _evaluate(args: argparse.Namespace) -> int:
    from scfront.attacks.blackbox.starts import StartPool
    from scfront.data import eval_subset_indices
    from scfront.errors import ConfigError
    from scfront.distributed import launched, setup, teardown
    from scfront.evaluation.checks import resolve_selection
    from scfront.evaluation.protocol import evaluate, finalize
    from scfront.evaluation.ranks import TIMEOUT, send_units_to_rank0
    from scfront.evaluation.runner import EvalData
    from scfront.evaluation.spec import Shard
    from scfront.evaluation.suite import build_columns, build_suite, parse_value
    from scfront.models.loader import load, resolve_spec

    shard = Shard.parse(args.shard)
    columns = _column_items(args.column)
    if bool(args.attacks) == bool(columns):
        raise ConfigError("give the attacks with --attacks LIST (one cascade) or with --column LABEL=LIST "
                          "(one cascade per column), not both and not neither")
    items = _items(args.attacks)
    if args.attacks and not items:
        raise ConfigError("--attacks lists no attack; name at least one, e.g. --attacks pgd-linf "
                          "(see scfront evaluate --help)")
    if args.batch_size < 1 or args.check_images < 1:
        raise ConfigError("--batch-size and --check-images must be >= 1")
    resolve_selection(args.checks, args.check_images)  # unknown check names are refused before any work
    checks = [] if args.no_checks else args.checks
    # the attacks first: a bad attack list or radius is refused before the model and data are read
    overrides = {"eps": None if args.eps is None else parse_value(args.eps), "steps": args.steps,
                 "restarts": args.restarts, "top_u": args.top_u, "steepness": args.steepness,
                 "eot_samples": args.eot_samples}
    attacks = (build_columns(columns, {label: overrides for label in columns}) if columns
               else build_suite(items, overrides))
    # under torchrun (WORLD_SIZE > 1) each rank computes shard RANK/WORLD_SIZE, rank 0 writes the results
    if launched() and shard != Shard():
        raise ConfigError("under torchrun the ranks are the shards; leave out --shard")
    ctx = setup(args.device or "cpu", timeout=TIMEOUT, where="--device")
    if ctx.distributed:
        shard = Shard(ctx.rank, ctx.world_size)
    device = ctx.device
    spec = resolve_spec(args.model)
    model = load(spec, weights=args.weights, device=device)
    name = spec.display_name
    if args.ensemble is not None:
        model, name = _with_ensemble(model, args.ensemble, name)
    # the model is validated on probe images of the dataset's shape before the data are read,
    # and again on the real images before any attack (scfront.evaluation.protocol)
    _validate_on_probe(model, args, device, _suite_attacks(attacks))
    test = _load_test_set(args)
    index = eval_subset_indices(len(test), args.n_images, args.subset_seed)
    data = EvalData(index, test.images[index], test.labels[index])
    results = evaluate(model, data, attacks, args.out, starts=StartPool(test.images), model_name=name,
                       dataset=args.dataset,
                       subset_seed=args.subset_seed, seed=args.seed, batch_size=args.batch_size,
                       cascade=not args.no_cascade, checks=checks, check_images=args.check_images,
                       shard=shard, device=device, n_classes=len(test.classes), model_seed=args.model_seed,
                       attack_model=args.attack_model, rebatch=not args.no_rebatch,
                       progress=not args.no_progress and sys.stderr.isatty() and ctx.is_main)
    if ctx.distributed:
        try:
            send_units_to_rank0(args.out, ctx)
            results = finalize(args.out) if ctx.is_main else None
        finally:
            teardown(ctx)
        if not ctx.is_main:
            print(f"rank {ctx.rank}: shard {shard.index}/{shard.count} done; rank 0 writes the results")
            return 0
    if results is None:
        print(f"shard {shard.index}/{shard.count} done; other shards still have work. When all are done, "
              f"run `scfront evaluate-merge` on their folders (or rerun any shard with the same --out).")
        return 0
    _print_results(results, args.out)
    return 0


def _with_ensemble(model: Any, samples: int, name: str) -> tuple[Any, str]:
    """``--ensemble E``: the model averaged over E forward passes (log of the mean softmax,
    :class:`~scfront.models.ensemble.Ensemble`); 1 = the single network, also for a model whose
    card makes it an ensemble."""
    from scfront.errors import ConfigError
    from scfront.models.ensemble import Ensemble

    if samples < 1:
        raise ConfigError(f"--ensemble must be >= 1 forward passes, got {samples}")
    inner = model.model if isinstance(model, Ensemble) else model
    if samples == 1:
        return inner, name
    return Ensemble(inner, samples).eval(), f"{name} (ensemble of {samples})"


def _items(groups: list[str]) -> list[str]:
    """Attack items of comma-separated ``--attacks`` groups, ``@SUITE`` expanded."""
    from scfront.evaluation.suite import expand_suites

    return expand_suites([item for group in groups for item in group.split(",") if item.strip()])


def _column_items(specs: list[str]) -> dict[str, list[str]]:
    """{label: attack items} of ``--column LABEL=LIST`` options, in order."""
    from scfront.errors import ConfigError

    out: dict[str, list[str]] = {}
    for text in specs:
        label, sep, rest = text.partition("=")
        label = label.strip()
        if not sep or not label or ":" in label or "," in label or not rest.strip():
            raise ConfigError(f"--column must look like LABEL=LIST (e.g. apgd=apgd-ce,apgd-dlr), got {text!r}")
        if label in out:
            raise ConfigError(f"--column {label!r} is given twice")
        out[label] = _items([rest])
        if not out[label]:
            raise ConfigError(f"--column {label!r} lists no attack; name at least one, e.g. {label}=pgd-linf")
    return out


def _merge(args: argparse.Namespace) -> int:
    from scfront.evaluation.protocol import merge

    results = merge(args.shards, args.out)
    _print_results(results, args.out)
    return 0
