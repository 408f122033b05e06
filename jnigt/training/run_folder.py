"""A run's folder, for every executor: ``config.json``, ``metrics.jsonl``, TensorBoard events under ``tb/``
and orbax checkpoints under ``checkpoints/<round>``.

metrics.jsonl is strict JSON (non-finite values as null, named in the row's ``"nonfinite"`` field:
jnigt/training/divergence.py); TensorBoard receives finite scalars only (one warning per metric that was
not). Resuming restores the newest checkpoint that reads: newer unreadable ones are moved to
``checkpoints_unreadable/`` with a warning, and the metric rows are cut at the checkpoint's round.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings

import numpy as np

from jnigt.distributed import is_writer
from jnigt.training import divergence

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


def prepare(out_dir) -> str:
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


def check_out_dir(config, out_dir: str, ignore: tuple[str, ...] = ()) -> None:
    """Raise ValueError if ``out_dir`` holds a run of another config (config.json differs, fields in
    ``ignore`` aside) or a corrupt config.json; cheap, so callers run it before building anything.
    ``config``: a TrainConfig or the dict written to config.json."""
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


def write_rows(path: str, rows: list[dict], mode: str) -> None:
    """Metric rows as strict JSON lines (non-finite values as null, named in "nonfinite")."""
    with open(path, mode) as f:
        for r in rows:
            f.write(json.dumps(divergence.json_row(r), allow_nan=False) + "\n")


def read_rows(path: str, upto_round: int) -> list[dict]:
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
            stacklevel=4,
        )
    return rows


def add_scalars(writer, row: dict, skipped: set, skip=("round",)) -> None:
    """``row``'s finite numbers as TensorBoard scalars at step ``row["round"]`` (a list of numbers as
    ``name/i``); a non-finite one is skipped, with one warning per metric name (``skipped`` holds the
    names already reported)."""
    for name, v in row.items():
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                writer.add_scalar(f"{name}/{i}", x, row["round"])
            continue
        if name in skip or v is None or isinstance(v, (dict, str)):
            continue
        if not np.isfinite(v):
            if name not in skipped:
                skipped.add(name)
                warnings.warn(
                    f"{name} is non-finite ({v}) at round {row['round']}; not written to TensorBoard "
                    '(metrics.jsonl keeps it as null, named in its "nonfinite" field); further such values '
                    "of this metric are skipped silently",
                    RuntimeWarning,
                    stacklevel=3,
                )
            continue
        writer.add_scalar(name, v, row["round"])


def restore_newest_readable(manager, state, checkpoint_dir: str):
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
                stacklevel=4,
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


class RunFolder:
    """An opened run folder (``out_dir`` already :func:`prepare`-d).

    Opening it restores ``state`` from the newest readable checkpoint when ``resume`` (``self.state``:
    the restored state, or ``state`` as given; ``self.rows``: the metric rows up to its round; without
    ``resume``: deletes the old checkpoints, which would shadow the new run's), writes
    ``config`` (a dict) to config.json and the rows to metrics.jsonl, and opens the TensorBoard writer.
    ``state``: a :class:`~jnigt.training.TrainState` (its round is the checkpoint's step). Process 0
    alone writes files (:func:`jnigt.distributed.is_writer`); every process checkpoints.
    """

    def __init__(self, out_dir: str, config: dict, state, *, resume: bool, tensorboard: bool):
        import orbax.checkpoint as ocp

        self.out_dir = out_dir
        self.metrics_path = os.path.join(out_dir, METRICS_FILE)
        checkpoint_dir = os.path.join(out_dir, "checkpoints")
        if not resume and is_writer():  # start over: older checkpoints would shadow this run's
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        self._manager = ocp.CheckpointManager(
            checkpoint_dir,
            options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
        )
        self.state, self.rows = state, []
        restored = restore_newest_readable(self._manager, state, checkpoint_dir) if resume else None
        if restored is not None:
            self.state = restored
            self.rows = read_rows(self.metrics_path, int(restored.round))
        self._writer = None
        self._skipped: set[str] = set()  # metrics not written to TensorBoard because non-finite
        if is_writer():
            with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
                f.write(json.dumps(config, indent=1, sort_keys=True))
            write_rows(self.metrics_path, self.rows, "w")
            if tensorboard:
                from tensorboardX import SummaryWriter

                self._writer = SummaryWriter(
                    os.path.join(out_dir, "tb"), purge_step=int(self.state.round) + 1
                )

    def append(self, rows: list[dict], tensorboard: bool = True) -> None:
        """New metric rows: to metrics.jsonl and (unless ``tensorboard=False``) TensorBoard."""
        if not is_writer():
            return
        write_rows(self.metrics_path, rows, "a")
        if self._writer is not None and tensorboard:
            for r in rows:
                add_scalars(self._writer, r, self._skipped)
            self._writer.flush()

    def save(self, step: int, state) -> None:
        """An orbax checkpoint of ``state`` at ``step`` (waits until it is written)."""
        import orbax.checkpoint as ocp

        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._manager.close()
