"""Runs that diverge or stop learning say so: a host-side check between chunks, and strict-JSON metric rows.

:class:`Monitor` is called by ``jnigt.training.train`` and ``jnigt.executors.ray.train_ray`` after
every chunk of ``eval_every`` rounds (never inside the jitted step). A run has diverged when

- its returns (``eval_return``, ``train_return``) or the norm of its direction (``grad_norm``) are
  non-finite, or its parameters are;
- its parameters have not changed for ``TrainConfig.stall_rounds`` rounds (compared at chunk ends).

``TrainConfig.on_divergence`` decides what happens: ``"error"`` raises :class:`DivergedError` (a
ValueError: one line and exit 2 at the command line) naming the settings to change, ``"warn"`` warns
once per kind of problem and carries on. Sweeps flag such runs instead
(``jnigt.experiments.sweep.GridRuns.diverged``).

metrics.jsonl is strict JSON: :func:`json_row` writes a non-finite value as ``null`` and records it in
the row's ``"nonfinite"`` field (name -> ``"nan"``, ``"inf"`` or ``"-inf"``); :func:`parse_row`
restores it.
"""

from __future__ import annotations

import math
import warnings

import jax
import numpy as np

ON_DIVERGENCE = ("error", "warn")
#: metric names whose non-finite value means the run diverged
RETURNS = ("eval_return", "train_return")
GRADIENTS = ("grad_norm",)


class DivergedError(ValueError):
    """A run's returns, direction or parameters became non-finite, or its parameters stopped moving."""


def _is_float(v) -> bool:
    return isinstance(v, float) and not isinstance(v, bool)


def nonfinite(row: dict) -> dict[str, str]:
    """The row's non-finite float values: name -> "nan" | "inf" | "-inf"."""
    return {k: repr(v) for k, v in row.items() if _is_float(v) and not math.isfinite(v)}


def json_row(row: dict) -> dict:
    """``row`` with non-finite floats as None and a ``"nonfinite"`` field naming them (strict JSON)."""
    bad = nonfinite(row)
    if not bad:
        return row
    out = {k: (None if k in bad else v) for k, v in row.items()}
    out["nonfinite"] = bad
    return out


def parse_row(row: dict) -> dict:
    """Inverse of :func:`json_row`: the values named in ``"nonfinite"`` back as floats."""
    bad = row.get("nonfinite")
    if not isinstance(bad, dict):
        return row
    out = {k: v for k, v in row.items() if k != "nonfinite"}
    out.update({k: float(v) for k, v in bad.items()})
    return out


def _host(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


class Monitor:
    """Checks a run after each chunk (see the module docstring).

    ``where``: a label for the messages (e.g. the executor); ``params``/``round_``: the run's starting
    point (after a resume: the restored one).
    """

    def __init__(self, config, params, round_: int, where: str = ""):
        self.config = config
        self.where = where
        self._last = _host(params)
        self._moved = int(round_)
        self._warned: set[str] = set()

    def _fix(self) -> str:
        c = self.config
        return (
            f"change the settings: a shorter horizon (horizon={c.horizon}, --horizon), a smaller learning rate "
            f"(learning_rate={c.learning_rate:g}, --learning-rate) or another initial policy (seed={c.seed}, "
            f"policy={c.policy!r}); on_divergence='warn' (--on-divergence warn) only warns"
        )

    def _report(self, kind: str, what: str, dropped: int = 0) -> None:
        label = f"{self.config.method}+{self.config.optimizer}" + (f" ({self.where})" if self.where else "")
        hint = (
            f" ({dropped} gradients were dropped as non-finite: an agent's environment may yield NaN or inf)"
            if dropped
            else ""
        )
        msg = f"{label}: {what}{hint}; {self._fix()}"
        if self.config.on_divergence == "error":
            raise DivergedError(msg)
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def check_rows(self, rows) -> None:
        """Non-finite returns or direction norms in metric ``rows`` (dicts, as train() returns them)."""
        for kind, names in (("returns", RETURNS), ("gradients", GRADIENTS)):
            for r in rows:
                bad = [k for k in names if _is_float(r.get(k)) and not math.isfinite(r[k])]
                if bad:
                    what = ", ".join(f"{k}={r[k]}" for k in bad)
                    dropped = sum(int(x.get("grads_dropped") or 0) for x in rows)
                    where = (
                        "the initial policy's return is non-finite"
                        if r["round"] == 0
                        else f"the run diverged at round {r['round']}"
                    )
                    self._report(kind, f"{where}: {what}", dropped)
                    break

    def check(self, rows, params, round_: int) -> None:
        """After a chunk: its metric ``rows``, then the parameters at round ``round_``."""
        self.check_rows(rows)
        now = _host(params)
        if not all(np.all(np.isfinite(x)) for x in now):
            self._report("parameters", f"the run diverged by round {round_}: the parameters are non-finite")
        if any(a.shape != b.shape or np.any(a != b) for a, b in zip(now, self._last)):
            self._last, self._moved = now, int(round_)
        stall = self.config.stall_rounds
        if stall is not None and round_ - self._moved >= stall:
            self._report(
                "stall",
                f"the parameters have not changed from round {self._moved} to round {round_} "
                f"(stall_rounds={stall}, --stall-rounds): training stopped moving",
            )
