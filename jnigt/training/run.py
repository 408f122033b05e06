"""Run a :class:`TrainConfig` to the end: metrics (JSON lines + TensorBoard), progress bar, and
orbax checkpoints after every chunk. A killed run started again with the same ``out_dir`` resumes
from its last checkpoint and ends with exactly the parameters and metrics of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable

import jax
import numpy as np

from jnigt.distributed import is_writer
from jnigt.training.config import TrainConfig
from jnigt.training.loop import Trainer
from jnigt.training.state import TrainState

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


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


def _read_rows(path: str, upto_round: int) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r["round"] <= upto_round]


def _write_rows(path: str, rows: list[dict], mode: str) -> None:
    with open(path, mode) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


@functools.lru_cache(maxsize=8)
def _cached_trainer(config: TrainConfig, num_devices: int | None, use_pmap: bool) -> Trainer:
    """One Trainer (and one compilation) per config within a process: resuming, or running the
    same config again, reuses the compiled chunk."""
    return Trainer(config, num_devices=num_devices, use_pmap=use_pmap)


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
    after that many chunks) -- used to test resuming.
    """
    trainer = _cached_trainer(config, num_devices, use_pmap)
    state = trainer.init(config.seed)
    rows: list[dict] = []
    manager = writer = None
    if out_dir is not None:
        import orbax.checkpoint as ocp

        out_dir = os.path.abspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        config_path = os.path.join(out_dir, CONFIG_FILE)
        config_json = json.dumps(dataclasses.asdict(config), indent=1, sort_keys=True)
        if resume and os.path.exists(config_path):
            with open(config_path) as f:
                if json.loads(f.read()) != json.loads(config_json):
                    raise ValueError(
                        f"out_dir {out_dir} holds a run with a different config; use a new out_dir "
                        "or pass resume=False (--no-resume) to start over"
                    )
        manager = ocp.CheckpointManager(
            os.path.join(out_dir, "checkpoints"),
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )
        latest = manager.latest_step() if resume else None
        if latest is not None:
            state = manager.restore(latest, args=ocp.args.StandardRestore(state))
            rows = _read_rows(os.path.join(out_dir, METRICS_FILE), int(state.round))
        if is_writer():
            with open(config_path, "w") as f:
                f.write(config_json)
            _write_rows(os.path.join(out_dir, METRICS_FILE), rows, "w")
            if tensorboard:
                from tensorboardX import SummaryWriter

                writer = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=int(state.round) + 1)

    if int(state.round) == 0 and not rows:
        # the starting point, so that curves begin at time 0 with the initial policy's return
        rows = [{"round": 0, "time": 0.0, "env_steps": 0, "eval_return": float(trainer.evaluate(state))}]
        if out_dir is not None and is_writer():
            _write_rows(os.path.join(out_dir, METRICS_FILE), rows, "w")

    total_chunks = config.rounds // config.eval_every
    done_chunks = int(state.round) // config.eval_every
    bar = None
    if progress and is_writer():
        from tqdm import tqdm

        bar = tqdm(
            total=total_chunks, initial=done_chunks, unit="chunk", desc=f"{config.method}+{config.optimizer}"
        )
    chunks_run = 0
    for _ in range(done_chunks, total_chunks):
        if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
            break
        first_round = int(state.round)
        state, metrics, eval_return = trainer.run_chunk(state)
        new_rows = _rows(metrics, eval_return, first_round)
        rows.extend(new_rows)
        chunks_run += 1
        if out_dir is not None and is_writer():
            _write_rows(os.path.join(out_dir, METRICS_FILE), new_rows, "a")
            if writer is not None:
                for r in new_rows:
                    for name, v in r.items():
                        if name != "round":
                            writer.add_scalar(name, v, r["round"])
                writer.flush()
        if manager is not None:
            import orbax.checkpoint as ocp

            manager.save(int(state.round), args=ocp.args.StandardSave(state))
            manager.wait_until_finished()
        if bar is not None:
            last = new_rows[-1]
            bar.set_postfix(time=f"{last['time']:.4g}", eval_return=f"{last['eval_return']:.4g}")
            bar.update(1)
        if on_chunk is not None:
            on_chunk(state, new_rows)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if manager is not None:
        manager.close()
    return trainer, state, rows
