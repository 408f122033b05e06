"""The files of the experiments: CSV and JSON reading and writing of runs, tuning tables, choices and
summaries. The bottom layer: it imports nothing of the project, so that the protocol (:mod:`.protocol`),
the composition (:mod:`.compare`) and the analysis modules (:mod:`.crosscheck`, :mod:`.results`,
:mod:`.study`) share it without importing each other.

Files of one panel ``<name>`` (:func:`panel_paths`): ``<name>_tuning.csv`` (:data:`TUNING_COLUMNS`),
``<name>_chosen.json`` (:func:`jnigt.experiments.tuning.choices` and the run's settings),
``<name>_curves.csv`` (:data:`CURVE_COLUMNS`, every report run at every grid time),
``<name>_summary.csv`` (:data:`SUMMARY_COLUMNS`, one row per method), ``<name>.png``; one line per panel
in ``summary.jsonl``. Floats are written with 6 significant digits.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence

TUNING_COLUMNS = [
    "panel",
    "method",
    "batch_size",
    "learning_rate",
    "momentum",
    "seeds",
    "score",
    "median_final_return",
    "diverged_runs",
    "chosen",
]
SUMMARY_COLUMNS = [
    "panel",
    "env",
    "n",
    "step_model",
    "comm_model",
    "time_unit",
    "method",
    "label",
    "batch_size",
    "learning_rate",
    "momentum",
    "seeds",
    "t_end",
    "median_return_half",
    "median_final_return",
    "q20_final_return",
    "q80_final_return",
    "threshold",
    "seeds_reached",
    "median_time_to_threshold",
    "reference",
    "ttt_ratio",
    "ttt_ratio_lo90",
    "ttt_ratio_hi90",
    "median_rounds",
    "median_grads_used",
    "median_comms",
    "median_env_steps",
    "wall_s",
]
CURVE_COLUMNS = ["panel", "method", "batch_size", "learning_rate", "momentum", "seed", "time"] + [
    "eval_return",
    "rounds",
    "env_steps",
    "grads_used",
    "comms",
]


def _parent(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def read_rows(path: str) -> list[dict]:
    """The rows of a CSV file written by :func:`write_rows` (values as strings)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: str, rows: Iterable[dict], columns: Sequence[str]) -> str:
    """``rows`` as CSV with the header ``columns`` (other keys are left out); returns ``path``."""
    _parent(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def write_tuning(path: str, rows: Sequence[dict]) -> str:
    """The whole tuning grid (rows of :func:`jnigt.experiments.tuning.grid_row`) as CSV."""
    return write_rows(path, rows, TUNING_COLUMNS)


def write_curves(path: str, runs: Iterable, panel: str) -> str:
    """Every run of ``runs`` (``jnigt.experiments.sweep.GridRuns``) at every grid time as CSV."""
    return write_rows(path, [row for r in runs for row in r.rows(panel=panel)], CURVE_COLUMNS)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: dict) -> str:
    _parent(path)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    return path


def append_jsonl(path: str, data: dict) -> str:
    """One line of JSON appended to ``path`` (numbers numpy cannot hand to JSON as floats)."""
    with open(path, "a") as f:
        f.write(json.dumps(data, default=float) + "\n")
    return path


def panel_paths(out_dir: str, name: str) -> dict[str, str]:
    """The files of panel ``name`` in ``out_dir``, by kind (see the module docstring)."""
    return dict(
        tuning=os.path.join(out_dir, f"{name}_tuning.csv"),
        chosen=os.path.join(out_dir, f"{name}_chosen.json"),
        curves=os.path.join(out_dir, f"{name}_curves.csv"),
        summary=os.path.join(out_dir, f"{name}_summary.csv"),
        figure=os.path.join(out_dir, f"{name}.png"),
    )
