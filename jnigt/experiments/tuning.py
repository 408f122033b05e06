"""The paper's tuning protocol, per method and per panel (see docs/algorithms.md#experiments).

1. Grid: step size alpha in {2^-10, ..., 2^-1}, NIGT momentum eta in {0.001, 0.01, 0.1}, batch
   M = M_init in {20, 30, 50} for the methods that have a batch (Rennala, Malenia, Synchronized;
   AFedPG steps on every single gradient, so it is tuned over (alpha, eta) only). Smaller grids for
   the CPU and the tests: :data:`GRIDS`.
2. Every grid point runs ``tune_seeds`` seeds (seeds ``0 .. tune_seeds-1``) to the panel's end time on
   the panel's equal-time grid.
3. Criterion (:func:`score`): the area under the MEDIAN (over tuning seeds) return-vs-time curve,
   divided by ``T_end`` (the time-averaged median return; trapezoid rule on the grid). A point whose
   median curve is non-finite anywhere, or one of whose runs the sweep flagged ``diverged`` (non-finite
   returns or gradients, or parameters that stalled: ``jnigt.experiments.sweep.GridRuns.diverged``),
   scores ``-inf``, the worst. Highest score wins; ties go to
   the earlier point of the grid order (M, then alpha, then eta, ascending).
4. Report: the chosen point runs ``report_seeds`` FRESH seeds (``REPORT_SEED_OFFSET + k``), never used
   in tuning; only those runs enter the figures and statistics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jnigt import validate
from jnigt.experiments import files, stats
from jnigt.training import methods

#: Report seeds are ``REPORT_SEED_OFFSET + k``: disjoint from the tuning seeds ``0 .. tune_seeds-1``.
REPORT_SEED_OFFSET = 1000
CRITERION = "area under the median (over tuning seeds) return-vs-time curve / T_end"


@dataclasses.dataclass(frozen=True)
class TuningGrid:
    """Hyperparameter grid of one size. ``batch_sizes`` apply to the methods with a batch."""

    learning_rates: tuple[float, ...]
    momenta: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    tune_seeds: int
    report_seeds: int

    def __post_init__(self):
        for name in ("learning_rates", "momenta", "batch_sizes"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must hold at least one value")
        if any(not (v > 0 and math.isfinite(v)) for v in self.learning_rates):
            raise ValueError(f"learning_rates: must be positive floats (got {self.learning_rates!r})")
        if any(not 0 < v <= 1 for v in self.momenta):
            raise ValueError(f"momenta: must be in (0, 1] (got {self.momenta!r})")
        for name in ("tune_seeds", "report_seeds"):
            validate.integer(name, getattr(self, name))
        validate.integers("batch_sizes", self.batch_sizes)

    def batches(self, method: str) -> tuple[int, ...]:
        """Batch sizes swept for ``method`` (one separate compile each); a method that does not batch
        (AFedPG): the first only."""
        return tuple(self.batch_sizes) if methods.get(method).BATCHES else tuple(self.batch_sizes[:1])

    def hyper_points(self) -> list[tuple[float, float]]:
        """(alpha, eta) pairs, alpha-major: one vmapped sweep per batch size covers them all."""
        return [(a, e) for a in self.learning_rates for e in self.momenta]

    @property
    def tuning_seeds(self) -> tuple[int, ...]:
        return tuple(range(self.tune_seeds))

    @property
    def fresh_seeds(self) -> tuple[int, ...]:
        return tuple(REPORT_SEED_OFFSET + k for k in range(self.report_seeds))


GRIDS = {
    "full": TuningGrid(
        learning_rates=tuple(2.0**-k for k in range(10, 0, -1)),
        momenta=(0.001, 0.01, 0.1),
        batch_sizes=(20, 30, 50),
        tune_seeds=3,
        report_seeds=5,
    ),
    "cpu": TuningGrid(
        # 2^-10 added after the first cpu run: AFedPG chose the grid's lower end (2^-8) on main_c and hetero
        learning_rates=(2.0**-10, 2.0**-8, 2.0**-6, 2.0**-4, 2.0**-2),
        momenta=(0.01, 0.1),
        batch_sizes=(20,),
        tune_seeds=2,
        report_seeds=5,
    ),
    "tiny": TuningGrid(
        learning_rates=(2.0**-6, 2.0**-2), momenta=(0.1,), batch_sizes=(4,), tune_seeds=1, report_seeds=2
    ),
}


def score(times, returns) -> float:
    """The selection criterion (see the module docstring): ``stats.area_under_median``."""
    return stats.area_under_median(times, returns)


#: The tuning table's columns and writer (:mod:`jnigt.experiments.files`; study.py calls ``write_table``)
TABLE_COLUMNS = files.TUNING_COLUMNS
write_table = files.write_tuning


def grid_row(
    panel: str, method: str, batch: int, lr: float, mom: float, times, returns, diverged=None
) -> dict:
    """One row of the tuning table for one grid point; ``returns`` = [tuning seeds, grid points];
    ``diverged`` (optional, [tuning seeds]): the sweep's per-run flags. A point with a diverged run
    (flagged, or a non-finite return) scores ``-inf``."""
    y = np.asarray(returns, float)
    bad = ~np.all(np.isfinite(y), axis=1)
    if diverged is not None:
        bad = bad | np.asarray(diverged, bool).reshape(-1)
    return dict(
        panel=panel,
        method=method,
        batch_size=int(batch),
        learning_rate=float(lr),
        momentum=float(mom),
        seeds=int(y.shape[0]),
        score=-math.inf if bad.any() else score(times, y),
        median_final_return=float(np.median(y[:, -1])),
        diverged_runs=int(np.sum(bad)),
        chosen=False,
    )


def select(rows: Sequence[dict]) -> dict[str, dict]:
    """Best grid row per method (highest score, first in grid order on ties); marks it ``chosen``.

    Raises ValueError if every point of a method diverged (score -inf): widen the grid.
    """
    best: dict[str, dict] = {}
    for r in rows:
        b = best.get(r["method"])
        if b is None or r["score"] > b["score"]:
            best[r["method"]] = r
    for m, r in best.items():
        if r["score"] == -math.inf:
            raise ValueError(f"every grid point of {m} diverged on panel {r['panel']}; widen the grid")
        r["chosen"] = True
    return best


def choices(chosen: dict[str, dict], grid: TuningGrid, extra: dict | None = None) -> dict:
    """The chosen values per method, with the criterion, the grid and the seeds used, and ``extra``
    (the record of ``<panel>_chosen.json``)."""
    return dict(
        criterion=CRITERION,
        grid=dataclasses.asdict(grid),
        tuning_seeds=list(grid.tuning_seeds),
        report_seeds=list(grid.fresh_seeds),
        chosen={
            m: dict(
                batch_size=r["batch_size"],
                learning_rate=r["learning_rate"],
                momentum=r["momentum"],
                score=r["score"],
            )
            for m, r in chosen.items()
        },
        **(extra or {}),
    )
