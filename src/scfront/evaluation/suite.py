"""Building the attack suite from names and overrides (the evaluation itself:
:func:`scfront.evaluation.protocol.evaluate`).

An attack item is ``NAME`` or ``NAME:KEY=VALUE:KEY=VALUE`` (e.g. ``square:queries=1000`` or
``pgd-l2:eps=0.5``); values are integers, numbers (``8/255`` allowed), ``true``/``false``,
``none`` or strings. Suite-wide overrides (``--eps``, ``--steps``, ...) apply to every attack
that declares that parameter; an item's own values take precedence. ``top_u`` and ``steepness``
(suite-wide or in an item) make one :class:`~scfront.frontend.bpda.BPDA` value for the attacks
that take ``bpda``; ``0`` is the identity, as in Python, and a field not given takes the paper's
value (U = 30, s = 4). ``@NAME`` stands for one of the named suites of :data:`SUITES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from scfront.attacks.base import Attack
from scfront.attacks.registry import attack_parameters, create_attack
from scfront.errors import ConfigError
from scfront.evaluation.spec import AttackSpec
from scfront.frontend.bpda import BPDA
from scfront.values import parse_value  # noqa: F401  (one parser for all command-line values; re-exported)

# Item and suite-wide options that are the two fields of one BPDA value, not attack parameters.
BPDA_OPTIONS = ("top_u", "steepness")


# AutoAttack's Square (autoattack.py of fra31/auto-attack builds it with p_init 0.8, 5,000 queries,
# one restart and resc_schedule=False); the same item in the standard and plus suites.
_AA_SQUARE = "square:queries=5000:p_init=0.8:rescale_schedule=false"

# Named suites for ``--attacks @NAME`` (Linf 8/255 unless --eps says otherwise). The AutoAttack
# suites are the three versions of AutoAttack's ``set_version`` (Croce & Hein 2020); parameters
# not written in an item are the attack's defaults, which are AutoAttack's (steps 100, restarts 1,
# n_target_classes 9), and suite-wide options such as --steps still reach them.
SUITES: dict[str, tuple[tuple[str, ...], str]] = {
    "autoattack": (("apgd-ce", "apgd-t", "fab-t", _AA_SQUARE),
                   "AutoAttack 'standard' as a cascade, one restart each: APGD-CE (100 iterations); "
                   "APGD-T (100 iterations, 9 target classes); FAB-T (100 iterations, 9 target "
                   "classes); Square (5,000 queries, p_init 0.8, p schedule not rescaled)"),
    "autoattack-plus": (("apgd-ce:restarts=5", "apgd-dlr:restarts=5", "fab:restarts=5", _AA_SQUARE,
                         "apgd-t", "fab-t"),
                        "AutoAttack 'plus' as a cascade: APGD-CE and APGD-DLR (100 iterations, 5 "
                        "restarts each); untargeted FAB (100 iterations, 5 restarts); Square (5,000 "
                        "queries, p_init 0.8, p schedule not rescaled, 1 restart); APGD-T and FAB-T "
                        "(100 iterations, 9 target classes, 1 restart each)"),
    "autoattack-rand": (("apgd-ce:eot_samples=20", "apgd-dlr:eot_samples=20"),
                        "AutoAttack 'rand', for randomised models: APGD-CE then APGD-DLR (100 "
                        "iterations, 1 restart each), every gradient averaged over 20 EOT samples"),
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


def _bpda_value(parts: Mapping[str, Any]) -> BPDA:
    """One BPDA value from ``top_u``/``steepness`` options (keys of :data:`BPDA_OPTIONS`; a
    missing field takes the paper's rule). ConfigError for values BPDA does not accept."""
    return dataclasses.replace(BPDA(), **parts)


def build_suite(items: Sequence[str], overrides: Mapping[str, Any] | None = None) -> list[Attack]:
    """Attack objects for ``items`` (``NAME:KEY=VALUE:...``), in order.

    Args:
        items: attack items (``@NAME`` suites expanded already, see :func:`expand_suites`).
        overrides: suite-wide parameters (None values ignored), applied to every attack that
            declares them; ``top_u``/``steepness`` build a BPDA value for attacks with ``bpda``.
    Raises:
        ConfigError: unknown attack, or an item option the attack does not declare.
    """
    suite_wide = {k: v for k, v in (overrides or {}).items() if v is not None}
    suite_bpda = {k: suite_wide.pop(k) for k in BPDA_OPTIONS if k in suite_wide}
    attacks = []
    for item in items:
        name, own = parse_item(item)
        declared = attack_parameters(name)
        kwargs = {k: v for k, v in suite_wide.items() if k in declared}
        own_bpda = {k: own.pop(k) for k in BPDA_OPTIONS if k in own}
        if own_bpda and "bpda" not in declared:
            raise ConfigError(f"attack {name!r} has no BPDA rules to set ({', '.join(own_bpda)} in {item!r})")
        if "bpda" in declared and (suite_bpda or own_bpda):
            kwargs["bpda"] = _bpda_value({**suite_bpda, **own_bpda})
        kwargs.update(own)
        attacks.append(create_attack(name, **kwargs))
    return attacks


def build_columns(columns: Mapping[str, Sequence[str]],
                  overrides: Mapping[str, Mapping[str, Any] | None] | None = None) -> dict[str, list[Attack]]:
    """{column label: attacks} for :func:`~scfront.evaluation.protocol.evaluate`.

    Args:
        columns: {label: attack items of that column, in cascade order}.
        overrides: {label: suite-wide overrides of that column} (see :func:`build_suite`).
    """
    return {label: build_suite(items, (overrides or {}).get(label)) for label, items in columns.items()}


def attack_spec(attack: Attack, column: str | None = None) -> AttackSpec:
    """The :class:`AttackSpec` of ``attack`` (in column ``column``) for spec.json."""
    threat = attack.threat
    return AttackSpec(attack.name, attack.params(), threat.norm.value, threat.eps, attack.black_box, column)
