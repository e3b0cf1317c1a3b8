"""report.md: the results of one evaluation as a short Markdown page (rendered from results.json)."""

from __future__ import annotations

import math
from typing import Any


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _eps(norm: str | None, eps: float | None) -> str:
    if eps is None:
        return "–"
    if norm == "Linf":
        scaled = eps * 255
        if abs(scaled - round(scaled)) < 1e-6:
            return f"{round(scaled)}/255"
    return f"{eps:g}"


def render_report(results: dict[str, Any]) -> str:
    """Markdown summary: clean, per-attack and worst-case accuracy, timings, checks, parameters."""
    lines = [
        f"# Evaluation of `{results['model']}`",
        "",
        f"{results['dataset']} test set, {results['n_images']} images (subset seed {results['subset_seed']}), "
        f"attack seed {results['seed']}, batch size {results['batch_size']}, "
        + ("cascade (each attack runs on the points every earlier attack failed on)." if results["cascade"]
           else "no cascade (every attack runs on every correctly classified point)."),
        "",
        f"- clean accuracy: **{_pct(results['clean_accuracy'])}**",
        f"- worst case over the suite (per example): **{_pct(results['worst_case_accuracy'])}**",
        "",
        "| # | attack | norm | ε | robust accuracy | standalone accuracy | run on | broken | seconds | queries |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, a in enumerate(results["attacks"], 1):
        lines.append(f"| {i} | {a['name']} | {a['norm']} | {_eps(a['norm'], a['eps'])} | {_pct(a['robust_accuracy'])} "
                     f"| {_pct(a['standalone_accuracy'])} | {a['n_run']} | {a['n_broken']} | {a['seconds']:.1f} "
                     f"| {a['queries']} |")
    lines += ["", "Robust accuracy is over all images" + (" and cumulative along the cascade" if results["cascade"]
                                                             else "") +
              "; standalone accuracy is over the points the attack ran on."]
    columns = results.get("columns") or {}
    if columns:
        lines += ["", "## Columns", "",
                  "Each column is a cascade of its own; its accuracy is the per-example worst case over its "
                  "attacks. The worst case above is over every column.", "",
                  "| column | attacks | accuracy | median norm | seconds |", "|---|---|---|---|---|"]
        for label, c in columns.items():
            median = "–" if c["median_norm"] is None else f"{c['median_norm']:.4g}"
            lines.append(f"| {label} | {', '.join(c['attacks'])} | {_pct(c['accuracy'])} | {median} "
                         f"| {c['seconds']:.1f} |")
    unconstrained = [a for a in results["attacks"] if "unconstrained" in a]
    if unconstrained:
        lines += ["", "## Unconstrained adversarials (minimum-norm attacks)", "",
                  "| attack | norm | median norm | found / run |", "|---|---|---|---|"]
        for a in unconstrained:
            u = a["unconstrained"]
            median = "–" if u["median_norm"] is None or not math.isfinite(u["median_norm"]) else f"{u['median_norm']:.4g}"
            lines.append(f"| {a['name']} | {a['norm']} | {median} | {u['found']} / {u['ran']} |")
    if results["checks"]:
        lines += ["", "## Self-checks", "", "| check | passed | seconds | detail |", "|---|---|---|---|"]
        for name, check in results["checks"].items():
            mark = "yes" if check["passed"] else "**NO**"
            seconds = f"{check['seconds']:.1f}" if "seconds" in check else "–"
            lines.append(f"| {name} | {mark} | {seconds} | {check['detail']} |")
    if "attack_seconds" in results:
        attack, checks = results["attack_seconds"], results["check_seconds"]
        share = f" ({100 * checks / (attack + checks):.0f} % of attacks and checks)" if attack + checks > 0 else ""
        lines += ["", f"Time: clean pass {results['clean_seconds']:.1f} s, attacks {attack:.1f} s, "
                      f"checks {checks:.1f} s{share}."]
    lines += ["", "## Attack parameters", ""]
    for a in results["attacks"]:
        params = ", ".join(f"{k}={v}" for k, v in a["params"].items())
        lines.append(f"- `{a['name']}`: {params}")
    lines += ["", f"Model sha256 (parameters): `{results['model_sha256']}`", ""]
    return "\n".join(lines)
