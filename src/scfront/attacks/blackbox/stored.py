"""Stored adversarial examples: the safetensors file written by ``scfront evaluate``.

One file per evaluation (``adversarials.safetensors``), read back by the ``transfer`` attack and
by users. Tensors:

- ``indices`` (N,) int64: dataset indices of the evaluated images (subset order);
- ``clean`` (N, C, H, W) uint8: the images themselves (exact for 8-bit datasets), which lets a
  reader match stored adversarials to images without trusting indices;
- ``labels`` (N,) int64 and ``clean_pred`` (N,) int64;
- ``broken_by`` (N,) int64: position (in the attack list) of the first attack that broke the
  image, -1 if none did (robust), -2 if the clean image was already misclassified;
- per attack ``NAME``: ``positions/NAME`` (K,) int64 rows of the images it ran on,
  ``x_adv/NAME`` (K, C, H, W) float32 and ``success/NAME`` (K,) bool.

The header metadata holds ``format`` = ``scfront-adversarials/1`` and ``attacks``: a JSON list of
``{"name", "norm", "eps"}`` in attack order. Nothing is unpickled when reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from scfront.errors import InputError
from scfront.io import atomic_write

FORMAT = "scfront-adversarials/1"


@dataclass(frozen=True)
class StoredAttack:
    """One attack's stored outputs: rows into the clean set, adversarials, success flags."""

    name: str
    norm: str
    eps: float
    positions: torch.Tensor
    x_adv: torch.Tensor
    success: torch.Tensor


@dataclass(frozen=True)
class StoredAdversarials:
    indices: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    broken_by: torch.Tensor
    attacks: tuple[StoredAttack, ...]

    def attack(self, name: str) -> StoredAttack:
        for item in self.attacks:
            if item.name == name:
                return item
        raise InputError(f"no attack {name!r} in the stored adversarials; stored: "
                         f"{', '.join(a.name for a in self.attacks) or 'none'}")


def is_adversarials_file(path: str | Path) -> bool:
    """True if ``path`` is a safetensors file in this format (reads the header only)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except (OSError, ValueError, RuntimeError):
        return False


def save_adversarials(path: str | Path, stored: StoredAdversarials) -> Path:
    """Write ``stored`` atomically (see the module docstring for the layout)."""
    tensors: dict[str, torch.Tensor] = {
        "indices": stored.indices.long().contiguous(),
        "clean": stored.clean.to(torch.uint8).contiguous(),
        "labels": stored.labels.long().contiguous(),
        "clean_pred": stored.clean_pred.long().contiguous(),
        "broken_by": stored.broken_by.long().contiguous(),
    }
    meta: list[dict[str, Any]] = []
    for item in stored.attacks:
        tensors[f"positions/{item.name}"] = item.positions.long().contiguous()
        tensors[f"x_adv/{item.name}"] = item.x_adv.float().contiguous()
        tensors[f"success/{item.name}"] = item.success.bool().contiguous()
        meta.append({"name": item.name, "norm": item.norm, "eps": item.eps})
    metadata = {"format": FORMAT, "attacks": json.dumps(meta)}
    # clone: callers may pass one tensor twice (labels == predictions), which safetensors refuses
    data = {k: v.detach().cpu().clone() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata))


def load_adversarials(path: str | Path) -> StoredAdversarials:
    """Read a file written by :func:`save_adversarials`; InputError if it is not one."""
    path = Path(path)
    if not is_adversarials_file(path):
        raise InputError(f"{path} is not an adversarials file of scfront evaluate ({FORMAT})")
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("attacks", "[]"))
        get = handle.get_tensor
        try:
            attacks = tuple(
                StoredAttack(m["name"], m["norm"], float(m["eps"]), get(f"positions/{m['name']}"),
                             get(f"x_adv/{m['name']}"), get(f"success/{m['name']}"))
                for m in meta
            )
            return StoredAdversarials(get("indices"), get("clean"), get("labels"), get("clean_pred"),
                                      get("broken_by"), attacks)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"{path}: incomplete adversarials file ({exc})") from None
