"""``scfront data info`` and ``scfront data download``."""

from __future__ import annotations

import argparse
from pathlib import Path

from scfront.errors import DatasetError


def register(subparsers: argparse._SubParsersAction) -> None:
    from scfront.cli_options import add_data_root_argument, output_folder

    parser = subparsers.add_parser(
        "data", help="inspect or download datasets",
        description="Inspect the datasets under a data root, or download CIFAR-10.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: parser.error("choose an action: info or download"))

    info = commands.add_parser(
        "info", help="images per class and cache status of each dataset found",
        description="List the datasets under the data root: images per split and class, and "
                    "whether the decoded arrays are cached (decoding the PNGs is the slow part).",
    )
    add_data_root_argument(info)
    info.add_argument("--image-size", type=int, default=160,
                      help="Imagenette size whose cache status is reported (default: 160)")
    info.set_defaults(handler=_info)

    download = commands.add_parser(
        "download", help="download the official CIFAR-10 python release",
        description="Download cifar-10-python.tar.gz over https, verify its md5 and extract "
                    "cifar-10-batches-py/ into DEST (load it with --data-root DEST).",
    )
    download.add_argument("--dataset", choices=["cifar10"], default="cifar10")
    download.add_argument("--dest", type=output_folder, required=True,
                          help="folder to download into (created)")
    download.add_argument("--remove-tarball", action="store_true",
                          help="delete the tarball after extraction")
    download.set_defaults(handler=_download)


def _counts_line(classes: list[str], counts: list[int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in zip(classes, counts))


def _describe_folders(dataset_dir: Path, spec_name: str, size: int) -> list[str]:
    from scfront.data.folders import is_cached
    from scfront.data.layout import FOLDER_SPECS, list_split

    spec = FOLDER_SPECS[spec_name]
    lines = [f"{spec_name}: {dataset_dir} (image folders)"]
    for split in spec.splits:
        try:
            listing = list_split(dataset_dir, split, spec)
        except DatasetError as exc:
            lines.append(f"  {split}: unusable: {exc}")
            continue
        cached = "cached" if is_cached(listing, spec, size) else "not cached"
        lines.append(f"  {split}: {len(listing)} images, {cached} at {size}px")
        lines.append(f"    {_counts_line(list(listing.classes), listing.counts())}")
    return lines


def _info(args: argparse.Namespace) -> int:
    from scfront.cli_options import resolve_data_root
    from scfront.data.cache import cache_dir
    from scfront.data.cifar10 import Cifar10Format, find_cifar10
    from scfront.data.cifar_batches import read_python_release
    from scfront.data.layout import resolve_dataset_dir

    root = resolve_data_root(args.data_root)
    lines: list[str] = [f"data root: {root}", f"cache: {cache_dir() / 'datasets'}"]
    try:
        source = find_cifar10(root)
    except DatasetError as exc:
        lines.append(f"cifar10: not found ({exc})")
    else:
        if source.format is Cifar10Format.FOLDERS:
            lines += _describe_folders(source.path, "cifar10", 32)
        else:
            lines.append(f"cifar10: {source.path} (python release, {source.format.value})")
            for split in ("train", "test"):
                _, labels, classes = read_python_release(source.path, split)
                counts = [int((labels == i).sum()) for i in range(len(classes))]
                lines.append(f"  {split}: {len(labels)} images")
                lines.append(f"    {_counts_line(classes, counts)}")
    try:
        imagenette = resolve_dataset_dir(root, "imagenette")
    except DatasetError:
        lines.append("imagenette: not found")
    else:
        lines += _describe_folders(imagenette, "imagenette", args.image_size)
    print("\n".join(lines))
    return 0


def _download(args: argparse.Namespace) -> int:
    from scfront.data.download import download_cifar10

    folder = download_cifar10(args.dest, keep_tarball=not args.remove_tarball)
    print(f"CIFAR-10 python release ready in {folder}; use --data-root {args.dest}")
    return 0
