"""scfront.reproduction: the paper's Table 1, its ablations, their figures, and the demo.

- :func:`run_table1` (``scfront reproduce table1``): train or reuse the four models, evaluate each
  in one evaluation whose attacks are grouped into the columns defined once in
  :mod:`scfront.reproduction.columns`, write report.md from the results.json files.
- :func:`run_ablations` (``scfront reproduce ablations``): docs/method.md §8 under one budget.
- :func:`run_demo` (``scfront demo``): a model attacked on the shipped CIFAR-10 sample.
- :func:`load_sample`: that sample (``python -m scfront.reproduction.sample`` writes it).

Names are imported lazily (PEP 562) so that ``scfront --help`` does not import torch.
"""

from __future__ import annotations


_EXPORTS = {
    "run_table1": "scfront.reproduction.table1",
    "Table1Settings": "scfront.reproduction.table1",
    "table1_plan": "scfront.reproduction.columns",
    "run_ablations": "scfront.reproduction.ablations",
    "ablations": "scfront.reproduction.ablations",
    "run_demo": "scfront.reproduction.demo",
    "DemoSettings": "scfront.reproduction.demo",
    "load_sample": "scfront.reproduction.sample",
}

__all__ = sorted(_EXPORTS)


from scfront.lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
