"""Run a :class:`TrainConfig` to the end: metrics (strict JSON lines + TensorBoard), progress bar, a
divergence check (:mod:`jnigt.training.divergence`) and orbax checkpoints after every chunk
(:class:`jnigt.training.outputs.RunOutputs`, shared with the Ray executor). A killed
run started again with the same ``out_dir`` resumes from its last checkpoint and ends with exactly the
parameters and metrics of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable

import jax
import numpy as np

from jnigt.training import methods, run_folder
from jnigt.training.config import TrainConfig
from jnigt.training.loop import Trainer
from jnigt.training.outputs import RunOutputs
from jnigt.training.precompile import precompile
from jnigt.training.run_folder import CONFIG_FILE, METRICS_FILE, check_out_dir
from jnigt.training.state import TrainState
from jnigt.transforms import find_aggregator_state, inactive_agents, starved_agents

__all__ = ["CONFIG_FILE", "METRICS_FILE", "check_out_dir", "train", "trainer_for"]


def _rows(metrics, eval_return, first_round: int) -> list[dict]:
    host = jax.tree.map(np.asarray, metrics)
    k = len(host["time"])
    rows = []
    for i in range(k):
        row = {"round": first_round + i + 1}
        row.update({name: v[i].item() for name, v in sorted(host.items())})
        rows.append(row)
    rows[-1]["eval_return"] = float(eval_return)
    return rows


def _check_agents(config: TrainConfig, state: TrainState, warned: set) -> None:
    """After a chunk: stop when an agent starved a Malenia / synchronized run; warn about dropped agents."""
    method = methods.get(config.method)
    if not method.WAITS_FOR_EVERY_AGENT:
        return
    if find_aggregator_state(state.opt_state) is None:
        return
    for agent in inactive_agents(state.opt_state):
        if agent not in warned:
            warned.add(agent)
            warnings.warn(
                f"agent {agent} sent only non-finite gradients for malenia_drop_after={config.malenia_drop_after} "
                "consecutive rounds and was dropped: the objective is now the mean over the other agents",
                stacklevel=3,
            )
    starved = starved_agents(state.opt_state, config.malenia_patience)
    if starved:
        raise ValueError(
            f"agent(s) {starved} sent only non-finite gradients for malenia_patience={config.malenia_patience} "
            f"consecutive rounds, so no {config.method} round can close; fix the agent's environment, "
            f"{method.STARVED_HINT}"
        )


@functools.lru_cache(maxsize=8)
def _cached_trainer(config: TrainConfig, num_devices: int | None, use_pmap: bool) -> Trainer:
    """One Trainer (and one compilation) per config within a process: resuming, or running the
    same config again, reuses the compiled chunk."""
    return Trainer(config, num_devices=num_devices, use_pmap=use_pmap)


def trainer_for(config: TrainConfig, num_devices: int | None = None, use_pmap: bool = False) -> Trainer:
    """The process's Trainer of ``config`` (end_time only stops the host loop, so runs that differ in it
    share one Trainer and its compiled programs)."""
    return _cached_trainer(dataclasses.replace(config, end_time=None), num_devices, use_pmap)


def train(
    config: TrainConfig,
    out_dir: str | None = None,
    *,
    num_devices: int | None = None,
    use_pmap: bool = False,
    resume: bool = True,
    progress: bool = True,
    tensorboard: bool = True,
    stop_after_chunks: int | None = None,
    on_chunk: Callable[[TrainState, list[dict]], None] | None = None,
):
    """Train; return ``(trainer, final_state, metric_rows)``.

    ``out_dir`` (optional) receives config.json, metrics.jsonl, TensorBoard events and orbax
    checkpoints (``checkpoints/<round>``). ``stop_after_chunks`` ends the call early (as if killed
    after that many chunks) -- used to test resuming. A run that diverges or stalls raises
    :class:`jnigt.training.divergence.DivergedError` after the chunk's metrics and checkpoint are
    written (``config.on_divergence="warn"``: warns once and goes on). An ``out_dir`` holding a run
    of another config is refused before anything is built or compiled.
    """
    if out_dir is not None:
        out_dir = run_folder.prepare(out_dir)  # before any compilation: a bad path fails fast
        if resume:
            check_out_dir(config, out_dir)
    trainer = trainer_for(config, num_devices, use_pmap)
    state = trainer.init(config.seed)
    folder = None
    if out_dir is not None:
        folder = run_folder.RunFolder(
            out_dir, dataclasses.asdict(config), state, resume=resume, tensorboard=tensorboard
        )
        state = folder.state
    outputs = RunOutputs(config, folder, state)
    total_chunks = config.rounds // config.eval_every
    done_chunks = int(state.round) // config.eval_every
    fresh = outputs.fresh(state)
    if progress and done_chunks < total_chunks:  # compile first, so that the bar times training only
        precompile([(f"{config.method}+{config.optimizer}", trainer, state)], evaluate=fresh)
    if fresh:
        outputs.first_row(trainer.evaluate(state), tensorboard=False)
    if progress:
        outputs.start_progress(state)

    chunks_run = 0
    warned_agents: set[int] = set()

    def after_chunk(state, rows):
        if on_chunk is not None:
            on_chunk(state, rows)
        _check_agents(config, state, warned_agents)

    for _ in range(done_chunks, total_chunks):
        if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
            break
        if config.end_time is not None and float(state.time) >= config.end_time:
            break
        first_round = int(state.round)
        state, metrics, eval_return = trainer.run_chunk(state)
        chunks_run += 1
        outputs.end_chunk(_rows(metrics, eval_return, first_round), state, then=after_chunk)
    outputs.close()
    return trainer, state, outputs.rows
