"""The progress bar of a run (jnigt/training/outputs.py): it counts the method's steps (rounds; AFedPG:
arrivals: the method's ``BATCHES``), so rate and ETA are in the method's unit. A run to a simulated
time (``end_time``) does not know its number of steps in advance: its total is estimated after each
chunk from the steps taken per simulated second so far (at most ``rounds``).

Created after the programs are compiled (:mod:`jnigt.training.precompile`), it times training only.
"""

from __future__ import annotations

import math

from jnigt.training import methods
from jnigt.training.config import TrainConfig


class RunProgress:
    """A tqdm bar over the steps of one run; :meth:`update` as steps end, :meth:`close` at the end.

    ``where``: a label before the run's name (e.g. the executor); ``by_time``: the run stops at
    ``config.end_time`` (False: it runs ``config.rounds`` steps whatever its end_time).
    """

    def __init__(
        self, config: TrainConfig, round: int, time: float, *, where: str = "", by_time: bool = True
    ):
        from tqdm import tqdm  # on first use: importing jnigt.training stays cheap

        self.config, self.round0, self.time0 = config, int(round), float(time)
        self.end_time = config.end_time if by_time else None
        self.eval_return: float | None = None
        unit = "round" if methods.get(config.method).BATCHES else "arrival"
        total = config.rounds if self.end_time is None else None
        desc = f"{config.method}+{config.optimizer}"
        self.bar = tqdm(
            total=total, initial=self.round0, unit=unit, desc=f"{where} {desc}" if where else desc
        )

    def update(self, round: int, time: float, eval_return: float | None = None) -> None:
        """The run is at step ``round``, time ``time``, last evaluation ``eval_return`` (None: unchanged)."""
        c, bar, end_time = self.config, self.bar, self.end_time
        if end_time is not None:
            if time >= end_time:
                total = round
            else:  # steps per simulated second so far, times the simulated time left
                rate = (round - self.round0) / max(time - self.time0, 1e-30)
                total = round + math.ceil(rate * (end_time - time))
            bar.total = min(total, c.rounds)
        if eval_return is not None:
            self.eval_return = eval_return
        postfix = {"time": f"{time:.4g}"}
        if self.eval_return is not None:
            postfix["eval_return"] = f"{self.eval_return:.4g}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(int(round) - bar.n)

    def close(self) -> None:
        self.bar.close()
