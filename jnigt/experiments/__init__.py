"""Fair comparisons: vmapped sweeps, equal-time evaluation, the paper's tuning protocol, statistics,
and the paper's panels. See docs/algorithms.md#experiments.

| module | what |
|---|---|
| ``sweep`` | ``EqualTimeRunner``: K runs (seeds x hyperparameters) in one jitted, vmapped program on one time grid |
| ``protocol`` | the tuning protocol as data: ``Runners`` per (method, M), ``tune``, ``report``, ``summarize``, ``run`` |
| ``files`` | CSV/JSON reading and writing of runs, tuning tables, choices and summaries |
| ``compare`` | ``run_panel`` (protocol, then files, cross-check, figure), ``run_sweep`` |
| ``tuning`` | ``TuningGrid``, ``GRIDS``, the selection criterion, grid rows and chosen values |
| ``stats`` | ``THRESHOLDS``, median band, time to threshold, bootstrap ratio, returns at equal times |
| ``convergence_stats`` | censored time to threshold, paired rank test, Holm, verdicts, A/A calibration, KM, rliable |
| ``panels`` | ``Panel``, the table ``PANELS``, ``panels_for(size)`` for tiny / cpu / full |
| ``crosscheck`` | predicted (``jnigt.theory.round_time``) against measured time per round, ``<panel>_theory.csv`` |
| ``cache`` | ``enable_compilation_cache`` (JAX persistent cache, on by default in the entry points) |
| ``commands`` | ``SweepArgs``/``sweep_command``, ``CompareArgs``/``compare_command``, ``ReproduceArgs``/``reproduce_command``, ``CrosscheckArgs``/``crosscheck_command`` |
| ``lqr_exact`` | exact ||grad J|| and J* - J on LQR (``exact_records``), ``stationary_point``, time to eps, rate fits |
| ``eventloop`` | ``RennalaEventLoop``: the plain Python event-heap baseline of the benchmark |
"""

from jnigt.experiments.cache import DEFAULT_CACHE_DIR, enable_compilation_cache
from jnigt.experiments.compare import run_panel, run_sweep
from jnigt.experiments.panels import Panel, panel_table, panels_for
from jnigt.experiments.protocol import PanelResult
from jnigt.experiments.stats import THRESHOLDS
from jnigt.experiments.sweep import EqualTimeRunner, GridRuns, time_grid
from jnigt.experiments.tuning import GRIDS, TuningGrid

__all__ = [
    "DEFAULT_CACHE_DIR",
    "EqualTimeRunner",
    "GRIDS",
    "GridRuns",
    "Panel",
    "PanelResult",
    "THRESHOLDS",
    "TuningGrid",
    "enable_compilation_cache",
    "panel_table",
    "panels_for",
    "run_panel",
    "run_sweep",
    "time_grid",
]
