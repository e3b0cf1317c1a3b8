"""Print a Markdown table of finished training runs, best monitor accuracy first.

One row per run folder of ``scfront train``: batch size, peak learning rate, weight decay and
seed from its ``config.toml`` (read with :func:`scfront.config.load_config`), final train
accuracy, monitor accuracy (the clean accuracy on the fixed test subset after the last epoch)
and training seconds from its ``summary.json`` (the header names the monitor subset's size when
every run used the same). The model weights are not needed.

Example (the table of results/recipe_search/README.md)::

    python scripts/training_table.py results/recipe_search/*/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from scfront.config import load_config
from scfront.errors import ConfigError, ScfrontError
from scfront.models.saving import CONFIG_FILE
from scfront.training.loop import SUMMARY_FILE


def read_run(run_dir: Path) -> dict[str, Any]:
    """The table's values of one run: name, batch, lr, weight decay, seed, accuracies, seconds.

    Raises:
        ConfigError: the folder has no summary.json or config.toml (not a finished run).
    """
    summary_path, config_path = run_dir / SUMMARY_FILE, run_dir / CONFIG_FILE
    for path in (summary_path, config_path):
        if not path.is_file():
            raise ConfigError(f"{run_dir} holds no {path.name}: not a finished `scfront train` run")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        train = load_config(config_path).train
        return {"name": run_dir.name, "batch": train.batch_size, "lr": train.lr_max,
                "weight_decay": train.weight_decay, "seed": train.seed,
                "train_accuracy": float(summary["train_accuracy"]),
                "monitor_accuracy": float(summary["monitor_accuracy"]),
                "monitor_images": summary.get("monitor_images"), "seconds": float(summary["seconds"])}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{summary_path}: not a summary written by scfront train ({exc!r})") from None


def table_rows(run_dirs: Sequence[Path]) -> list[str]:
    """The Markdown lines (header, rule, one row per run), by monitor accuracy, highest first."""
    runs = sorted((read_run(Path(d)) for d in run_dirs), key=lambda r: -r["monitor_accuracy"])
    sizes = {r["monitor_images"] for r in runs}
    monitor = f"monitor acc ({sizes.pop():,} test)" if len(sizes) == 1 and None not in sizes else "monitor acc"
    lines = [f"| run | batch | peak lr | weight decay | seed | final train acc | {monitor} | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['batch']} | {r['lr']} | {r['weight_decay']:g} | {r['seed']} | "
                     f"{100 * r['train_accuracy']:.1f} % | {100 * r['monitor_accuracy']:.1f} % | {r['seconds']:.0f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", metavar="RUN", type=Path, nargs="+", help="finished training run folders")
    args = parser.parse_args(argv)
    try:
        lines = table_rows(args.runs)
    except ScfrontError as exc:
        print(f"training_table: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
