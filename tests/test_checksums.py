"""Bitwise pins of tiny runs of every method: the final training state, the metrics and the evaluations of
a few simulated rounds (AFedPG and charge="taken" included), and a tiny equal-time sweep.

A change that is meant to keep behaviour (a refactor, a speed-up) must keep every checksum. A change of
behaviour on purpose regenerates them, in its own commit that says why:

    JNIGT_UPDATE_CHECKSUMS=1 python -m pytest -q tests/test_checksums.py

The checksums are of the programs compiled as tests/conftest.py sets XLA up (optimisations off, the
code-generation target pinned to AVX2), so they hold on any x86-64 host with AVX2. Ray runs are not
pinned: real actors arrive in a timing-dependent order.
"""

import hashlib
import json
import os
import pathlib

import jax
import numpy as np
import pytest
from test_charge import Lifetime
from test_training import LQR as TRAINING_LQR

from jnigt.experiments.sweep import RECORDS, EqualTimeRunner, time_grid
from jnigt.training import TrainConfig, Trainer

PINS = pathlib.Path(__file__).with_name("checksums.json")
UPDATE = os.environ.get("JNIGT_UPDATE_CHECKSUMS") == "1"

LQR = dict(TRAINING_LQR, comm_model="sqrt", rounds=4, eval_every=2)
TAKEN = dict(LQR, horizon=8, step_model=(1.0, 2.0, 1.0, 3.0), comm_model=0.5, charge="taken")

RUNS = {
    "rennala": dict(LQR, method="rennala"),
    "rennala_init_batch": dict(LQR, method="rennala", init_batch_size=12),
    "malenia": dict(LQR, method="malenia"),
    "synchronized": dict(LQR, method="synchronized"),
    "afedpg": dict(LQR, method="afedpg", rounds=8, eval_every=4),
    "afedpg_jitter": dict(LQR, method="afedpg", rounds=8, eval_every=4, jitter=0.3),
    "rennala_taken": dict(TAKEN, method="rennala"),
    "malenia_taken": dict(TAKEN, method="malenia", malenia_slack=8.0),
    "afedpg_taken": dict(TAKEN, method="afedpg", rounds=8, eval_every=4),
}
SWEEPS = ("rennala", "afedpg", "synchronized")


def digest(tree) -> str:
    """sha256 of every leaf's dtype, shape and bytes, in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        is_key = jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)
        a = np.asarray(jax.random.key_data(leaf) if is_key else leaf)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _run(case):
    cfg = TrainConfig(**RUNS[case])
    env = Lifetime([3, 8, 2, 8]) if cfg.charge == "taken" else None
    tr = Trainer(cfg, num_devices=1, env=env)
    st, metrics, evals = tr.init(cfg.seed), [], []
    for _ in range(cfg.rounds // cfg.eval_every):
        st, m, ev = tr.run_chunk(st)
        metrics.append(m)
        evals.append(ev)
    return {
        "state": digest(st),
        "eval_params": digest(tr.eval_params(st)),
        "metrics": digest(metrics),
        "evals": digest(evals),
    }


def _sweep(method):
    cfg = TrainConfig(**dict(LQR, method=method))
    runner = EqualTimeRunner(Trainer(cfg, num_devices=1))
    tr = runner.trainer
    times = time_grid(6.3 * float(tr.next_time(tr.init(0))), 5)
    res = runner(np.array([0, 1, 2]), np.array([0.1, 0.05, 0.2]), np.array([0.2, 0.5, 0.3]), times)
    return {name: digest(np.asarray(getattr(res, name))) for name in (*RECORDS, "capped")}


def _check(key, got):
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if UPDATE:
        pins[key] = got
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        return
    assert key in pins, f"no pin for {key}: run with JNIGT_UPDATE_CHECKSUMS=1 once"
    changed = sorted(k for k in got if got[k] != pins[key].get(k))
    assert not changed, f"{key}: {changed} changed bitwise"


@pytest.mark.parametrize("case", sorted(RUNS))
def test_simulated_run_is_bitwise_as_pinned(case):
    _check(f"run/{case}", _run(case))


@pytest.mark.parametrize("method", SWEEPS)
def test_equal_time_sweep_is_bitwise_as_pinned(method):
    _check(f"sweep/{method}", _sweep(method))


def test_a_pin_detects_a_last_bit_change():
    a = {"x": np.float32([1.0, 2.0])}
    b = {"x": np.nextafter(a["x"], np.float32(3.0))}
    assert digest(a) != digest(b) and digest(a) == digest({"x": np.float32([1.0, 2.0])})
