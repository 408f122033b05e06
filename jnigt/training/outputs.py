"""What a run writes and checks as it goes, for every executor (``jnigt.training.train`` and
``jnigt.executors.ray.train_ray``): its metric rows (to the run folder, jnigt/training/run_folder.py),
a checkpoint and the divergence check (jnigt/training/divergence.py) at every chunk end, and the
progress bar (jnigt/training/progress.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jnigt.distributed import is_writer
from jnigt.training import divergence
from jnigt.training.progress import RunProgress
from jnigt.training.run_folder import RunFolder


class RunOutputs:
    """One run's outputs: ``rows`` (the metric rows so far: the folder's restored ones, then the new ones),
    the run folder (None: nothing written), the divergence :class:`~jnigt.training.divergence.Monitor`
    and the bar.

    ``state``: the run's starting point (after a resume: the restored one); ``where``: a label for the
    divergence messages and the bar (e.g. the executor).
    """

    def __init__(self, config, folder: RunFolder | None, state, *, where: str = ""):
        self.config, self.folder, self.where = config, folder, where
        self.rows: list[dict] = [] if folder is None else folder.rows
        self.monitor = divergence.Monitor(config, state.params, int(state.round), where=where)
        self.bar: RunProgress | None = None
        self._chunk_start = len(self.rows)  # the rows of the open chunk: self.rows[self._chunk_start:]

    def fresh(self, state) -> bool:
        """Whether the run starts from scratch (nothing restored): it then begins with :meth:`first_row`."""
        return int(state.round) == 0 and not self.rows

    def first_row(self, eval_return: float, *, tensorboard: bool = True) -> None:
        """The starting point (round 0, time 0, the initial policy's return), so that curves begin at
        time 0; checked for a non-finite return."""
        row = {"round": 0, "time": 0.0, "env_steps": 0, "eval_return": float(eval_return)}
        self.add_rows([row], tensorboard=tensorboard)
        self._chunk_start = len(self.rows)
        self.monitor.check_rows([row])

    def start_progress(self, state, *, by_time: bool = True) -> None:
        """Open the bar at ``state``'s step and time (call it once the programs are compiled, so that it
        times training only); ``by_time``: the run stops at ``config.end_time``."""
        if is_writer():
            self.bar = RunProgress(
                self.config, int(state.round), float(state.time), where=self.where, by_time=by_time
            )

    def add_rows(self, rows: list[dict], *, tensorboard: bool = True) -> None:
        """New metric rows: kept, written to the folder, and shown on the bar."""
        self.rows.extend(rows)
        if self.folder is not None:
            self.folder.append(rows, tensorboard=tensorboard)
        if self.bar is not None:
            last = rows[-1]
            self.bar.update(last["round"], last["time"], last.get("eval_return"))

    def end_chunk(
        self, rows: list[dict], state, checkpoint=None, then: Callable[[Any, list[dict]], None] | None = None
    ) -> None:
        """A chunk ended with ``rows`` (its last rows, not yet added) at ``state``: add them, save
        ``checkpoint`` (default: ``state``) at ``state.round``, call ``then(state, rows)`` (the caller's
        own checks), and check the chunk's rows and ``state.params`` for divergence."""
        self.add_rows(rows)
        if self.folder is not None:
            self.folder.save(int(state.round), state if checkpoint is None else checkpoint)
        if then is not None:
            then(state, rows)
        self.monitor.check(self.rows[self._chunk_start :], state.params, int(state.round))
        self._chunk_start = len(self.rows)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.folder is not None:
            self.folder.close()
