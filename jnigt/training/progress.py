"""The progress bar of :func:`jnigt.training.train`: it counts the method's steps (rounds; AFedPG:
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
    """A tqdm bar over the steps of one run; :meth:`update` after each chunk, :meth:`close` at the end."""

    def __init__(self, config: TrainConfig, round: int, time: float):
        from tqdm import tqdm

        self.config, self.round0, self.time0 = config, int(round), float(time)
        unit = "round" if methods.get(config.method).BATCHES else "arrival"
        total = config.rounds if config.end_time is None else None
        self.bar = tqdm(
            total=total, initial=self.round0, unit=unit, desc=f"{config.method}+{config.optimizer}"
        )

    def update(self, round: int, time: float, eval_return: float) -> None:
        """After a chunk: the run is at step ``round``, simulated ``time``, evaluation ``eval_return``."""
        c, bar = self.config, self.bar
        if c.end_time is not None:
            if time >= c.end_time:
                total = round
            else:  # steps per simulated second so far, times the simulated time left
                rate = (round - self.round0) / max(time - self.time0, 1e-30)
                total = round + math.ceil(rate * (c.end_time - time))
            bar.total = min(total, c.rounds)
        bar.set_postfix(time=f"{time:.4g}", eval_return=f"{eval_return:.4g}", refresh=False)
        bar.update(int(round) - bar.n)

    def close(self) -> None:
        self.bar.close()
