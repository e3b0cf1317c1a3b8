"""scfront.evaluation: the attack suite over a fixed subset, per-example worst case, checks, reports.

- :func:`evaluate` (``scfront evaluate``): run or resume an evaluation into a folder; returns the
  results.json object (DESIGN.md schema) once every unit is done.
- :func:`build_suite`: attack objects from names like ``"square:queries=1000"``.
- :class:`EvalData`: the subset (indices, uint8 images, labels); :class:`Shard`: ``i/n`` split.
- :func:`merge` (``scfront evaluate-merge``) and :func:`finalize`: results from stored units.

Names are imported lazily (PEP 562) so that ``scfront --help`` does not import torch.
"""

from __future__ import annotations


_EXPORTS = {
    "evaluate": "scfront.evaluation.suite",
    "build_suite": "scfront.evaluation.suite",
    "EvalData": "scfront.evaluation.runner",
    "Shard": "scfront.evaluation.spec",
    "EvalSpec": "scfront.evaluation.spec",
    "merge": "scfront.evaluation.results",
    "finalize": "scfront.evaluation.results",
    "run_checks": "scfront.evaluation.checks",
}

__all__ = sorted(_EXPORTS)


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
