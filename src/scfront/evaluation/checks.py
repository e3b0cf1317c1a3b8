"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"; the AutoAttack flags), run on the first ``check_images`` images of the subset.

Each check is stored raw by :func:`run_checks` (one file per check, so a killed run keeps the
finished ones) and judged by :func:`summarize_checks` against the main results:

- ``large-eps``: PGD-Linf from the clean image (no random start, so that noise alone cannot
  succeed) at ε = 128/255, 100 steps of 2.5ε/100. Half the pixel range lets an attacker paint
  the image grey; an attack that works drives accuracy to ≈ 0. Passes if accuracy ≤ 1 %.
  (At 64/255 a strong model can keep a few percent: the paper's own defense kept 6.25 %.)
- ``more-steps``: the suite's first white-box attack with a ``steps`` parameter (else pgd-linf),
  run with its steps and with twice as many on the same seed; passes if doubling the steps lowers
  accuracy by at most 1 point (more steps must not keep finding new adversarials).
- ``gradients-nonzero``: fraction of correctly classified check images whose input gradient of
  the margin ``z_y − max_{j≠y} z_j`` is exactly zero (a zero-gradient front, saturation);
  passes if ≤ 1 %.
- ``deterministic``: two forward passes give identical logits, or every gradient attack of the
  suite averages gradients over EOT samples (``eot_samples > 1``).
- ``blackbox-vs-whitebox``: images broken by a black-box attack although every white-box attack
  of the same norm and at least the same ε ran on them and failed. Black-box attacks should not
  beat gradients; passes if such images are ≤ 1 % of the subset (noise: random search does find
  a few points near the boundary that PGD misses).
- ``bpda-variants`` (models with a sparse coding frontend only): PGD-Linf with other BPDA rules
  (identity through top-T, identity through the activation, both, wider top-U, steeper tanh);
  passes if none of them leaves the check images more than 1 point less accurate than the
  suite's worst case on the same images.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from scfront.attacks.base import Attack, predict
from scfront.attacks.losses import margin
from scfront.attacks.registry import create_attack
from scfront.attacks.threat import Norm
from scfront.evaluation.results import Collected
from scfront.evaluation.runner import EvalData, attack_threat
from scfront.evaluation.spec import EvalSpec, unit_generator
from scfront.evaluation.state import StateStore

log = logging.getLogger(__name__)

LARGE_EPS = 128.0 / 255.0
LARGE_EPS_STEPS = 100
LARGE_EPS_MAX_ACCURACY = 0.01
MORE_STEPS_TOLERANCE = 0.01
ZERO_GRADIENT_MAX_FRACTION = 0.01
BLACKBOX_NOISE = 0.01
BPDA_TOLERANCE = 0.01
# (top_u, steepness) at attack time: 0 = identity (PAPER.md section 6; the paper's rule is (30, 4)).
BPDA_VARIANTS = ((30, 4.0), (0, 4.0), (30, 0.0), (0, 0.0), (60, 4.0), (30, 16.0))
CHECKS = ("large-eps", "more-steps", "gradients-nonzero", "deterministic", "blackbox-vs-whitebox", "bpda-variants")


def _is_white_box(attack: Attack) -> bool:
    return not getattr(attack, "black_box", False)


def _gradient_settings(attacks: Sequence[Attack]) -> dict[str, Any]:
    """BPDA and EOT settings of the suite's first white-box Linf attack (used by the checks)."""
    for attack in attacks:
        if _is_white_box(attack) and attack.norm is Norm.LINF:
            fields = {f.name for f in dataclasses.fields(attack)} if dataclasses.is_dataclass(attack) else set()
            return {k: getattr(attack, k) for k in ("top_u", "steepness", "eot_samples") if k in fields}
    return {}


def _has_frontend(model: nn.Module) -> bool:
    try:
        from scfront.frontend.encoder import Encoder
    except ImportError:  # a build without the frontend package
        return False
    return any(isinstance(m, Encoder) for m in model.modules())


def _robust(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
    """(n,) bool: correctly classified and not broken by ``attack``."""
    correct = predict(model, x) == y
    out = correct.clone()
    idx = correct.nonzero().squeeze(1)
    if idx.numel():
        out[idx] = ~attack(model, x[idx], y[idx], generator=generator).success
    return out


def run_checks(model: nn.Module, data: EvalData, spec: EvalSpec, attacks: Sequence[Attack],
               store: StateStore, device: torch.device, progress: bool = True) -> None:
    """Run every check not stored yet on the first ``spec.check_images`` images."""
    k = min(spec.check_images, spec.n_images)
    x, y = data.batch(slice(0, k), device)
    model = model.to(device).eval()
    settings = _gradient_settings(attacks)
    todo = [name for name in CHECKS if name != "blackbox-vs-whitebox" and store.read_check(name) is None]
    for name in tqdm(todo, desc="checks", disable=not progress):
        start = time.perf_counter()
        gen = unit_generator(spec.seed, "check", name, device=device)
        record: dict[str, Any] = {"n": k}
        if name == "large-eps":
            attack = create_attack("pgd-linf", eps=LARGE_EPS, steps=LARGE_EPS_STEPS,
                                   step_size=2.5 * LARGE_EPS / LARGE_EPS_STEPS, random_start=False, **settings)
            record.update(eps=LARGE_EPS, robust=int(_robust(model, attack, x, y, gen).sum()))
        elif name == "more-steps":
            base = next((a for a in attacks if _is_white_box(a) and dataclasses.is_dataclass(a)
                         and "steps" in {f.name for f in dataclasses.fields(a)}), None)
            base = base if base is not None else create_attack("pgd-linf", **settings)
            steps = int(getattr(base, "steps"))
            doubled = dataclasses.replace(base, steps=2 * steps)  # type: ignore[type-var]
            one = _robust(model, base, x, y, unit_generator(spec.seed, "check", name, device=device))
            two = _robust(model, doubled, x, y, unit_generator(spec.seed, "check", name, device=device))
            record.update(attack=base.name, steps=steps, robust_1x=int(one.sum()), robust_2x=int(two.sum()))
        elif name == "gradients-nonzero":
            correct = predict(model, x) == y
            xs = x[correct].clone().requires_grad_(True)
            zero = 0
            if xs.shape[0]:
                with torch.enable_grad():
                    loss = margin(model(xs), y[correct]).sum()
                    (grad,) = torch.autograd.grad(loss, xs)
                zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
            record.update(n=int(correct.sum()), zero=zero)
        elif name == "deterministic":
            with torch.inference_mode():
                a, b = model(x), model(x)
            eot = [getattr(att, "eot_samples", 1) for att in attacks if _is_white_box(att)]
            record.update(max_abs_diff=float((a - b).abs().max()),
                          eot_on=bool(eot) and all(e > 1 for e in eot))
        elif name == "bpda-variants":
            if not _has_frontend(model):
                record.update(applicable=False)
            else:
                eps = next((attack_threat(a).eps for a in attacks if a.norm is Norm.LINF), 8.0 / 255.0)
                variants = []
                for top_u, steepness in BPDA_VARIANTS:
                    attack = create_attack("pgd-linf", eps=eps, top_u=top_u, steepness=steepness,
                                           eot_samples=settings.get("eot_samples", 1))
                    robust = _robust(model, attack, x, y, unit_generator(spec.seed, "check", name, device=device))
                    variants.append({"top_u": top_u, "steepness": steepness, "robust": robust.tolist()})
                record.update(applicable=True, eps=eps, variants=variants)
        store.write_check(name, record)
        if not progress:  # background runs: a log line per check instead of a bar
            log.info("check %s done on %d images in %.0f s", name, k, time.perf_counter() - start)


def checks_complete(store: StateStore) -> bool:
    """Whether every stored check of :func:`run_checks` is present."""
    return all(store.read_check(name) is not None for name in CHECKS if name != "blackbox-vs-whitebox")


def _blackbox_vs_whitebox(col: Collected) -> dict[str, Any]:
    spec = col.spec
    white = [i for i, a in enumerate(spec.attacks) if not a.black_box]
    suspicious = torch.zeros_like(col.labels, dtype=torch.bool)
    compared = []
    for i, a in enumerate(spec.attacks):
        if not a.black_box:
            continue
        peers = [j for j in white if spec.attacks[j].norm == a.norm and (spec.attacks[j].eps or 0) >= (a.eps or 0) - 1e-12]
        if not peers:
            continue
        compared.append(a.name)
        all_failed = torch.ones_like(suspicious)
        for j in peers:
            all_failed &= col.attacks[j].ran & ~col.attacks[j].success
        suspicious |= col.attacks[i].success & all_failed
    count = int(suspicious.sum())
    if not compared:
        return {"passed": True, "applicable": False,
                "detail": "not applicable: no black-box attack with a white-box attack of the same threat model"}
    return {"passed": count <= BLACKBOX_NOISE * spec.n_images, "applicable": True, "suspicious": count,
            "detail": f"{count} of {spec.n_images} images broken by {', '.join(compared)} but by no white-box "
                      f"attack of the same threat model (allowed: {BLACKBOX_NOISE:.0%})"}


def summarize_checks(col: Collected, store: StateStore) -> dict[str, dict[str, Any]]:
    """{name: {"passed": bool, "detail": str, ...}} for every check."""
    out: dict[str, dict[str, Any]] = {"blackbox-vs-whitebox": _blackbox_vs_whitebox(col)}
    for name in CHECKS:
        if name == "blackbox-vs-whitebox":
            continue
        rec = store.read_check(name)
        if rec is None:
            out[name] = {"passed": False, "detail": "not run (the shard that owns batch 0 has not finished its checks)"}
            continue
        n = max(int(rec["n"]), 1)
        if name == "large-eps":
            acc = rec["robust"] / n
            out[name] = {"passed": acc <= LARGE_EPS_MAX_ACCURACY, "accuracy": acc,
                         "detail": f"PGD-Linf at eps={rec['eps'] * 255:.0f}/255 from the clean image: accuracy "
                                   f"{acc:.2%} on {n} images (must be <= {LARGE_EPS_MAX_ACCURACY:.0%})"}
        elif name == "more-steps":
            a1, a2 = rec["robust_1x"] / n, rec["robust_2x"] / n
            out[name] = {"passed": a1 - a2 <= MORE_STEPS_TOLERANCE + 1e-12, "accuracy_1x": a1, "accuracy_2x": a2,
                         "detail": f"{rec['attack']}: {rec['steps']} steps {a1:.2%}, {2 * rec['steps']} steps "
                                   f"{a2:.2%} on {n} images (drop must be <= {MORE_STEPS_TOLERANCE:.0%})"}
        elif name == "gradients-nonzero":
            m = int(rec["n"])
            frac = rec["zero"] / m if m else 0.0
            out[name] = {"passed": frac <= ZERO_GRADIENT_MAX_FRACTION, "zero_fraction": frac,
                         "detail": f"{rec['zero']} of {m} correctly classified images have an all-zero margin "
                                   f"gradient (allowed: {ZERO_GRADIENT_MAX_FRACTION:.0%})"}
        elif name == "deterministic":
            same = rec["max_abs_diff"] == 0.0
            out[name] = {"passed": same or rec["eot_on"],
                         "detail": ("two forward passes agree exactly" if same else
                                    f"two forward passes differ (max |logit diff| {rec['max_abs_diff']:.3g}); "
                                    + ("EOT is on in every gradient attack" if rec["eot_on"]
                                       else "no EOT: set eot_samples > 1 on the gradient attacks"))}
        elif name == "bpda-variants":
            if not rec.get("applicable", False):
                out[name] = {"passed": True, "applicable": False, "detail": "not applicable: the model has no frontend"}
                continue
            k = int(rec["n"])
            suite = (col.broken_by()[:k] == -1)
            suite_acc = float(suite.float().mean())
            accs = {f"top_u={v['top_u']},steepness={v['steepness']:g}": sum(v["robust"]) / k for v in rec["variants"]}
            both = min(accs.values())
            out[name] = {"passed": suite_acc <= both + BPDA_TOLERANCE, "applicable": True, "variants": accs,
                         "detail": f"suite worst case {suite_acc:.2%} on the first {k} images; best BPDA variant "
                                   f"{both:.2%} (" + ", ".join(f"{kk}: {vv:.2%}" for kk, vv in accs.items()) + ")"}
    return out
