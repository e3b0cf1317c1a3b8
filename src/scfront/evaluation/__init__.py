"""scfront.evaluation: the attack suite over a fixed subset, per-example worst case, checks, reports.

- :func:`evaluate` (``scfront evaluate``): run or resume an evaluation into a folder; returns the
  results.json object (docs/evaluation.md §7) once every unit is done. Its attacks are one cascade,
  or columns ({label: attacks}, a cascade each) as in a row of the paper's Table 1.
- :func:`build_suite` / :func:`build_columns`: attack objects from items like
  ``"square:queries=1000"``.
- :class:`EvalData`: the subset (indices, uint8 images, labels); :class:`Shard`: ``i/n`` split.
- :func:`merge` (``scfront evaluate-merge``) and :func:`finalize`: results from stored units.
- :func:`register_check`, :func:`available_checks`: the registry of gradient-masking checks.

Module layers (each imports only from layers before it): ``spec``, ``state``, ``report`` →
``runner``, ``results``, ``suite`` → ``checks`` → ``protocol`` (runs the units, then the checks,
then writes the results) → ``cli``.

Names are imported lazily (PEP 562) so that ``scfront --help`` does not import torch.
"""

from __future__ import annotations


_EXPORTS = {
    "evaluate": "scfront.evaluation.protocol",
    "merge": "scfront.evaluation.protocol",
    "finalize": "scfront.evaluation.protocol",
    "build_suite": "scfront.evaluation.suite",
    "build_columns": "scfront.evaluation.suite",
    "EvalData": "scfront.evaluation.runner",
    "Shard": "scfront.evaluation.spec",
    "EvalSpec": "scfront.evaluation.spec",
    "run_checks": "scfront.evaluation.checks",
    "register_check": "scfront.evaluation.checks",
    "available_checks": "scfront.evaluation.checks",
}

__all__ = sorted(_EXPORTS)


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
