"""Building the attack suite from names and overrides, and the one-call :func:`evaluate`.

An attack item is ``NAME`` or ``NAME:KEY=VALUE:KEY=VALUE`` (e.g. ``square:queries=1000`` or
``pgd-l2:eps=0.5``); values are integers, numbers (``8/255`` allowed), ``true``/``false``,
``none`` or strings. Suite-wide overrides (``--eps``, ``--steps``, ...) apply to every attack
that has that parameter; an item's own values take precedence. ``@NAME`` stands for one of the
named suites of :data:`SUITES`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from scfront.attacks.base import Attack
from scfront.attacks.registry import attack_class, create_attack
from scfront.errors import ConfigError
from scfront.evaluation.runner import EvalData, attack_threat, run_units
from scfront.evaluation.spec import AttackSpec, EvalSpec, Shard, model_digest
from scfront.evaluation.state import StateStore


# Named suites for ``--attacks @NAME`` (Linf 8/255 unless --eps says otherwise).
SUITES: dict[str, tuple[tuple[str, ...], str]] = {
    "autoattack": (("apgd-ce", "apgd-t", "fab", "square"),
                   "AutoAttack's standard order: APGD-CE, targeted APGD-DLR, FAB, Square (5,000 queries)"),
    "long": (("apgd-ce:steps=1000", "apgd-dlr:steps=1000", "square:queries=5000"),
             "1,000-iteration APGD-CE and APGD-DLR, then Square with 5,000 queries: the cascade that "
             "takes the shipped cifar10_cpu defense to 0.4 % at Linf 8/255 "
             "(results/defense_attack_convergence)"),
}


def expand_suites(items: Sequence[str]) -> list[str]:
    """Replace every ``@NAME`` item by the attacks of :data:`SUITES` ``[NAME]``, in order."""
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item.startswith("@"):
            out.append(item)
            continue
        name = item[1:]
        if name not in SUITES:
            raise ConfigError(f"unknown attack suite {item!r}; named suites: "
                              + ", ".join(f"@{n}" for n in SUITES))
        out.extend(SUITES[name][0])
    return out


def parse_value(text: str) -> Any:
    """A scalar from the command line: int, float (also ``a/b``), bool, None or the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if "/" in text:
        num, _, den = text.partition("/")
        try:
            return float(num) / float(den)
        except (ValueError, ZeroDivisionError):
            pass
    return text


def parse_item(item: str) -> tuple[str, dict[str, Any]]:
    """``"NAME:k=v:k=v"`` -> (NAME, {k: v})."""
    name, *pairs = item.strip().split(":")
    options: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"attack option {pair!r} in {item!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        options[key.strip().replace("-", "_")] = parse_value(value.strip())
    return name, options


def build_suite(items: Sequence[str], overrides: Mapping[str, Any] | None = None,
                pool: Any = None) -> list[Attack]:
    """Attack objects for ``items``; ``pool`` (a StartPool) is given to attacks that take one."""
    attacks = []
    for item in items:
        name, own = parse_item(item)
        cls = attack_class(name)
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        kwargs = {k: v for k, v in (overrides or {}).items() if v is not None and k in fields}
        kwargs.update(own)
        if "pool" in fields and pool is not None:
            kwargs.setdefault("pool", pool)
        attacks.append(create_attack(name, **kwargs))
    return attacks


def attack_spec(attack: Attack) -> AttackSpec:
    threat = attack_threat(attack)
    params = {k: (v.value if hasattr(v, "value") else v) for k, v in attack.params().items()}
    return AttackSpec(attack.name, params, threat.norm.value, threat.eps, bool(getattr(attack, "black_box", False)))


def evaluate(model: nn.Module, data: EvalData, attacks: Sequence[Attack], out_dir: str | Path, *,
             model_name: str = "model", dataset: str = "cifar10", subset_seed: int = 0, seed: int = 0,
             batch_size: int = 250, cascade: bool = True, checks: bool = True, check_images: int = 100,
             shard: Shard = Shard(), device: torch.device | str = "cpu",
             progress: bool = True) -> dict[str, Any] | None:
    """Run (or resume) an evaluation into ``out_dir``; the results once every unit is done.

    Args:
        model: maps (N, C, H, W) float in [0, 1] to logits. data: the subset (:class:`EvalData`).
        attacks: the suite, in order (see :func:`build_suite`).
    Returns:
        The results.json object, or None while other shards still have units to compute.
    """
    from scfront.evaluation.checks import checks_complete
    from scfront.evaluation.results import finalize, missing_units

    spec = EvalSpec(model=model_name, model_sha256=model_digest(model), dataset=dataset,
                    n_images=int(data.labels.shape[0]), subset_seed=subset_seed, seed=seed,
                    batch_size=batch_size, cascade=cascade, checks=checks, check_images=check_images,
                    attacks=tuple(attack_spec(a) for a in attacks))
    run_units(model, data, spec, attacks, out_dir, shard, device, progress)
    if missing_units(Path(out_dir), spec) or (checks and not checks_complete(StateStore(out_dir))):
        return None
    return finalize(out_dir)
