"""Resumable state of an evaluation: one file per finished unit, written atomically.

Layout under ``OUT/state/``::

    subset.safetensors                 indices, images (uint8), labels of the whole subset
    clean/b00003.safetensors           pred (B,) int64                   [meta: seconds]
    a01-square/b00003.safetensors      ran (B,) bool, success (B,) bool, x_adv (K, C, H, W),
                                       norm (K,) float64 (minimum-norm attacks only)
                                       [meta: seconds, queries]
    checks/<name>.json                 raw numbers of one gradient-masking check

A unit's file appears only when the unit is complete (temporary file + rename), so a run killed
at any moment loses at most the units in progress, and a restart recomputes only those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from scfront.io import atomic_write, atomic_write_json

STATE_DIR = "state"


class StateStore:
    """Reads and writes the unit files of one evaluation folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir) / STATE_DIR

    # ------------------------------------------------------------------ paths
    def clean_path(self, batch: int) -> Path:
        return self.root / "clean" / f"b{batch:05d}.safetensors"

    def attack_path(self, position: int, name: str, batch: int) -> Path:
        return self.root / f"a{position:02d}-{name}" / f"b{batch:05d}.safetensors"

    def check_path(self, name: str) -> Path:
        return self.root / "checks" / f"{name}.json"

    @property
    def subset_path(self) -> Path:
        return self.root / "subset.safetensors"

    # ------------------------------------------------------------------ io
    @staticmethod
    def write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        data = {k: v.detach().cpu().clone() for k, v in tensors.items()}
        metadata = {"meta": json.dumps(meta or {})}
        atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata))

    @staticmethod
    def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
            meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        return tensors, meta

    def write_check(self, name: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.check_path(name), record)

    def read_check(self, name: str) -> dict[str, Any] | None:
        path = self.check_path(name)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def unit_files(self) -> list[Path]:
        """Every unit file (relative to the state folder), for merging shards."""
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root) for p in self.root.rglob("*")
                      if p.is_file() and not p.name.startswith("."))
