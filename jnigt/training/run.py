"""Run a :class:`TrainConfig` to the end: metrics (strict JSON lines + TensorBoard), progress bar, a
divergence check (:mod:`jnigt.training.divergence`) and orbax checkpoints after every chunk. A killed
run started again with the same ``out_dir`` resumes from its last checkpoint and ends with exactly the
parameters and metrics of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable

import jax
import numpy as np

from jnigt.distributed import is_writer
from jnigt.training import divergence, methods
from jnigt.training.config import TrainConfig
from jnigt.training.loop import Trainer
from jnigt.training.precompile import precompile
from jnigt.training.progress import RunProgress
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
    """The metric rows up to ``upto_round`` (the checkpoint's round).

    Rows past the checkpoint are about to be recomputed, so a line cut by a crash there is ignored;
    a corrupt row at or before the checkpoint is an error that names the line.
    """
    if not os.path.exists(path):
        return []
    rows: list[dict] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("round"), int):
                    raise ValueError("not a metrics row")
                row = divergence.parse_row(row)
            except ValueError:
                if rows and rows[-1]["round"] >= upto_round:
                    break  # past the checkpoint: dropped anyway
                raise ValueError(
                    f"{path}, line {number}: a corrupt metrics row before the checkpoint's round {upto_round}; "
                    "repair or remove the line, or pass resume=False (--no-resume) to start over"
                ) from None
            if row["round"] > upto_round:
                break
            rows.append(row)
    if not rows or rows[-1]["round"] < upto_round:
        last = rows[-1]["round"] if rows else None
        warnings.warn(
            f"{path} holds metric rows up to round {last} but the checkpoint is at round {upto_round}; "
            "the rows in between are missing from the resumed metrics",
            stacklevel=3,
        )
    return rows


def _prepare_out_dir(out_dir) -> str:
    """``out_dir`` as an absolute path to a writable folder (created if needed); ValueError otherwise."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder path (str), got {out_dir!r} ({type(out_dir).__name__})")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir {out_dir} is a file, not a folder; give a new or existing folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise ValueError(
            f"out_dir {out_dir} cannot be created or written ({e.strerror or e}); give a writable folder"
        ) from None
    return out_dir


def _restore_newest_readable(manager, state, checkpoint_dir: str):
    """Restore the newest checkpoint that reads; warn about (and set aside) newer unreadable ones.

    Returns the restored state, or ``None`` when there is no checkpoint. Raises ValueError when
    checkpoints exist but none can be read.
    """
    import orbax.checkpoint as ocp

    steps = sorted(manager.all_steps(), reverse=True)
    bad = []
    for step in steps:
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(state))
        except Exception as e:  # orbax raises many kinds (ValueError, UnicodeDecodeError, OSError, ...)
            bad.append((step, e))
            continue
        for b, e in bad:
            path = os.path.join(checkpoint_dir, str(b))
            aside = os.path.join(os.path.dirname(checkpoint_dir), "checkpoints_unreadable", str(b))
            if is_writer():
                os.makedirs(os.path.dirname(aside), exist_ok=True)
                shutil.rmtree(aside, ignore_errors=True)
                shutil.move(path, aside)
            warnings.warn(
                f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); moved it to {aside} and "
                f"resumed from the older checkpoint of round {step}",
                stacklevel=3,
            )
        if bad:
            manager.reload()
        return restored
    if bad:
        details = "; ".join(
            f"{os.path.join(checkpoint_dir, str(b))}: {type(e).__name__}: {e}" for b, e in bad
        )
        raise ValueError(
            f"no checkpoint in {checkpoint_dir} can be read ({details}); pass resume=False (--no-resume) "
            "to start over, or use a new out_dir"
        )
    return None


def _check_agents(config: TrainConfig, state: TrainState, warned: set) -> None:
    """After a chunk: stop when an agent starved a Malenia / synchronized run; warn about dropped agents."""
    method = methods.get(config.method)
    if not method.WAITS_FOR_EVERY_AGENT:
        return
    from jnigt.transforms import find_aggregator_state, inactive_agents, starved_agents

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


def write_rows(path: str, rows: list[dict], mode: str) -> None:
    """Metric rows as strict JSON lines (non-finite values as null, named in "nonfinite")."""
    with open(path, mode) as f:
        for r in rows:
            f.write(json.dumps(divergence.json_row(r), allow_nan=False) + "\n")


def add_scalars(writer, row: dict, skipped: set, skip=("round",)) -> None:
    """``row``'s finite numbers as TensorBoard scalars at step ``row["round"]``; a non-finite one is
    skipped, with one warning per metric name (``skipped`` holds the names already reported)."""
    for name, v in row.items():
        if name in skip or v is None or isinstance(v, (list, dict, str)):
            continue
        if not np.isfinite(v):
            if name not in skipped:
                skipped.add(name)
                warnings.warn(
                    f"{name} is non-finite ({v}) at round {row['round']}; not written to TensorBoard "
                    '(metrics.jsonl keeps it as null, named in its "nonfinite" field); further such values '
                    "of this metric are skipped silently",
                    RuntimeWarning,
                    stacklevel=2,
                )
            continue
        writer.add_scalar(name, v, row["round"])


def check_out_dir(config, out_dir: str, ignore: tuple[str, ...] = ()) -> None:
    """Raise ValueError if ``out_dir`` holds a run of another config (config.json differs, fields in
    ``ignore`` aside) or a corrupt config.json; cheap, so callers run it before building anything."""
    config_path = os.path.join(os.path.abspath(os.fspath(out_dir)), CONFIG_FILE)
    if not os.path.exists(config_path):
        return
    with open(config_path, encoding="utf-8", errors="replace") as f:
        try:
            saved = json.loads(f.read())
        except ValueError:
            raise ValueError(
                f"{config_path} is corrupt; pass resume=False (--no-resume) to start over, or use a new out_dir"
            ) from None
    mine = json.loads(json.dumps(config if isinstance(config, dict) else dataclasses.asdict(config)))
    saved = saved if isinstance(saved, dict) else {}
    differ = sorted(k for k in set(mine) | set(saved) if k not in ignore and saved.get(k) != mine.get(k))
    if differ:
        raise ValueError(
            f"out_dir {os.path.dirname(config_path)} holds a run with a different config ({', '.join(differ)} "
            "differ); use a new out_dir (--out) or pass resume=False (--no-resume) to start over"
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
        out_dir = _prepare_out_dir(out_dir)  # before any compilation: a bad path fails fast
        if resume:
            check_out_dir(config, out_dir)
    trainer = trainer_for(config, num_devices, use_pmap)
    state = trainer.init(config.seed)
    rows: list[dict] = []
    manager = writer = None
    if out_dir is not None:
        import orbax.checkpoint as ocp

        config_path = os.path.join(out_dir, CONFIG_FILE)
        config_json = json.dumps(dataclasses.asdict(config), indent=1, sort_keys=True)
        checkpoint_dir = os.path.join(out_dir, "checkpoints")
        manager = ocp.CheckpointManager(
            checkpoint_dir,
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )
        restored = _restore_newest_readable(manager, state, checkpoint_dir) if resume else None
        if restored is not None:
            state = restored
            rows = _read_rows(os.path.join(out_dir, METRICS_FILE), int(state.round))
        if is_writer():
            with open(config_path, "w") as f:
                f.write(config_json)
            write_rows(os.path.join(out_dir, METRICS_FILE), rows, "w")
            if tensorboard:
                from tensorboardX import SummaryWriter

                writer = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=int(state.round) + 1)

    monitor = divergence.Monitor(config, state.params, int(state.round))
    total_chunks = config.rounds // config.eval_every
    done_chunks = int(state.round) // config.eval_every
    fresh = int(state.round) == 0 and not rows
    if progress and done_chunks < total_chunks:  # compile first, so that the bar times training only
        precompile([(f"{config.method}+{config.optimizer}", trainer, state)], evaluate=fresh)
    if fresh:
        # the starting point, so that curves begin at time 0 with the initial policy's return
        rows = [{"round": 0, "time": 0.0, "env_steps": 0, "eval_return": float(trainer.evaluate(state))}]
        if out_dir is not None and is_writer():
            write_rows(os.path.join(out_dir, METRICS_FILE), rows, "w")
        monitor.check_rows(rows)

    bar = RunProgress(config, int(state.round), float(state.time)) if progress and is_writer() else None
    chunks_run = 0
    warned_agents: set[int] = set()
    skipped: set[str] = set()  # metrics not written to TensorBoard because non-finite
    for _ in range(done_chunks, total_chunks):
        if stop_after_chunks is not None and chunks_run >= stop_after_chunks:
            break
        if config.end_time is not None and float(state.time) >= config.end_time:
            break
        first_round = int(state.round)
        state, metrics, eval_return = trainer.run_chunk(state)
        new_rows = _rows(metrics, eval_return, first_round)
        rows.extend(new_rows)
        chunks_run += 1
        if out_dir is not None and is_writer():
            write_rows(os.path.join(out_dir, METRICS_FILE), new_rows, "a")
            if writer is not None:
                for r in new_rows:
                    add_scalars(writer, r, skipped)
                writer.flush()
        if manager is not None:
            import orbax.checkpoint as ocp

            manager.save(int(state.round), args=ocp.args.StandardSave(state))
            manager.wait_until_finished()
        if bar is not None:
            bar.update(new_rows[-1]["round"], new_rows[-1]["time"], new_rows[-1]["eval_return"])
        if on_chunk is not None:
            on_chunk(state, new_rows)
        _check_agents(config, state, warned_agents)
        monitor.check(new_rows, state.params, int(state.round))
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if manager is not None:
        manager.close()
    return trainer, state, rows
