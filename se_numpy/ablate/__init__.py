"""The paper's ablation study (Sec. 6 and 7.1, Tables 10-16) as runnable experiments.

    se-numpy ablate reduction --seeds 3            # Table 10 on the embedded data
    se-numpy ablate all --scheduler tcp://HOST:8786

One run = one training of one variant with one seed, in its own directory
(``runs.py``); the runs go to local processes or a Dask cluster
(``executors.py``); the statistics over seeds are a paired t-test against the
table's baseline (``stats.py``); results go to summary.json, a text table and
a figure (``report.py``). See docs/ablations.md.
"""
from .experiment import DEFAULT_BUDGET, FAST_BUDGET, plan_ablation, summarise
from .stats import paired_t_test
from .tables import TABLE_NAMES, make_tables

__all__ = ["plan_ablation", "summarise", "paired_t_test", "make_tables", "TABLE_NAMES",
           "DEFAULT_BUDGET", "FAST_BUDGET"]
