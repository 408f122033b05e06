"""Many devices, many processes: the same trajectories and the same parameters whatever the layout.

* 1, 2 and 8 host CPU devices (conftest forces 8), shard_map and pmap, Rennala NIGT and Malenia
  NIGT: the parameters after two chunks agree to float tolerance.
* Two processes on localhost (jax.distributed + gloo, one device each, started through the CLI)
  reach the parameters (read back from the orbax checkpoint) and metrics of one process with two
  devices.
* Clear errors: a mesh that does not divide the agents, more devices than visible, inconsistent
  multi-host arguments.

Compilation dominates the runtime, so each (method, devices, map) is trained once and cached.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile

import chex
import jax
import numpy as np
import pytest

from jnigt import distributed
from jnigt.training.config import TrainConfig
from jnigt.training.loop import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = dict(rtol=1e-5, atol=1e-5)
CHUNKS = 2
TINY = dict(
    env="fast", backend=None, hidden_sizes=(8,), horizon=8, batch_size=8, num_agents=8, rounds=4, eval_every=2
)


def _config(method, **overrides):
    return TrainConfig(method=method, **dict(TINY, **overrides))


@functools.cache
def _train(method, num_devices, use_pmap, **overrides):
    """(trainer, state, metrics) after CHUNKS chunks."""
    trainer = Trainer(_config(method, **overrides), num_devices=num_devices, use_pmap=use_pmap)
    state = trainer.init(trainer.config.seed)
    metrics = []
    for _ in range(CHUNKS):
        state, m, _ = trainer.run_chunk(state)
        jax.block_until_ready(state)
        metrics.append(jax.tree.map(np.asarray, m))
    metrics = {k: np.concatenate([m[k] for m in metrics]) for k in metrics[0]}
    return trainer, state, metrics


def _host(tree):
    return jax.tree.map(np.asarray, tree)


# (method, map, device counts compared with 1 device under shard_map); every case is one compile,
# so pmap (the legacy path, the same per-device function) covers 2 and 8 devices over both methods
CASES = [
    ("rennala", "shard_map", (2, 8)),
    ("rennala", "pmap", (2,)),
    ("malenia", "shard_map", (2, 8)),
    ("malenia", "pmap", (8,)),
]


@pytest.mark.parametrize("method, mapper, device_counts", CASES, ids=[f"{m}-{p}" for m, p, _ in CASES])
def test_device_counts_agree(method, mapper, device_counts):
    _, ref, ref_metrics = _train(method, 1, False)
    assert int(ref.round) == CHUNKS * TINY["eval_every"]
    for num_devices in device_counts:
        trainer, state, metrics = _train(method, num_devices, mapper == "pmap")
        assert trainer.num_devices == num_devices
        chex.assert_trees_all_close(_host(state.params), _host(ref.params), **TOL)
        chex.assert_trees_all_close(
            _host(trainer.eval_params(state)), _host(_train(method, 1, False)[0].eval_params(ref)), **TOL
        )
        # the round's bookkeeping (one psum) is exact
        for name in ("time", "env_steps", "grads_used", "comms"):
            np.testing.assert_allclose(metrics[name], ref_metrics[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(metrics["grad_norm"], ref_metrics["grad_norm"], **TOL)
        # optimizer state keeps one row per device, the same layout under shard_map and pmap
        for leaf in jax.tree.leaves(state.opt_state):
            assert leaf.shape[0] == num_devices


LAUNCHER = os.path.join(REPO, "scripts", "launch_local.py")


def _launch(args, log_dir, timeout=400):
    """Run scripts/launch_local.py; stop it (and so its children) whatever happens."""
    log = open(os.path.join(log_dir, "launcher.log"), "w+")
    proc = subprocess.Popen(
        [sys.executable, LAUNCHER, "--log-dir", log_dir, "--timeout", str(timeout), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        code = proc.wait(timeout=timeout + 60)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the launcher stops its children on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.seek(0)
        text = log.read()
        log.close()
        for name in sorted(os.listdir(log_dir)):
            if name.startswith("proc"):
                with open(os.path.join(log_dir, name)) as f:
                    text += f"\n----- {name}\n" + f.read()
    return code, text[-6000:]


def _cli_args(method, out):
    c = TINY
    return [
        "--method",
        method,
        "--env",
        c["env"],
        "--backend",
        "none",
        "--hidden-sizes",
        *map(str, c["hidden_sizes"]),
        "--horizon",
        str(c["horizon"]),
        "--batch-size",
        str(c["batch_size"]),
        "--num-agents",
        str(c["num_agents"]),
        "--rounds",
        str(c["rounds"]),
        "--eval-every",
        str(c["eval_every"]),
        "--no-plot",
        "--out",
        out,
    ]


def test_two_processes_match_one_process():
    """2 processes x 1 device (gloo, through scripts/launch_local.py and the CLI) == 1 process x
    2 devices: metrics and the parameters of the checkpoint both processes wrote. A second launch
    runs AFedPG (no collective: one device per process, replicated)."""
    import orbax.checkpoint as ocp

    method = "rennala"
    trainer, ref, ref_metrics = _train(method, 2, False)
    with tempfile.TemporaryDirectory() as out:
        code, text = _launch(
            [
                "--num-processes",
                "2",
                "--devices-per-process",
                "1",
                "--",
                *_cli_args(method, out),
            ],
            out,
        )
        assert code == 0, text
        run_dir = os.path.join(out, f"{method}+nigt")
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        assert [r["round"] for r in rows] == list(
            range(0, TINY["rounds"] + 1)
        )  # round 0: the initial evaluation
        rows = rows[1:]
        for name in ("time", "env_steps", "grads_used", "comms"):
            np.testing.assert_allclose([r[name] for r in rows], ref_metrics[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose([r["grad_norm"] for r in rows], ref_metrics["grad_norm"], **TOL)
        np.testing.assert_allclose([r["train_return"] for r in rows], ref_metrics["train_return"], **TOL)

        # the checkpoint both processes wrote together, read back onto this process's 2 devices
        with ocp.CheckpointManager(os.path.join(run_dir, "checkpoints")) as manager:
            assert manager.latest_step() == TINY["rounds"]
            restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(ref))
        chex.assert_trees_all_close(_host(restored.params), _host(ref.params), **TOL)
        chex.assert_trees_all_close(_host(restored.opt_state), _host(ref.opt_state), **TOL)

        # AFedPG through the same launcher; the reference is the config the CLI builds, trained here
        from jnigt import cli
        from jnigt.training import train

        code, text = _launch(
            ["--num-processes", "2", "--devices-per-process", "1", "--", *_cli_args("afedpg", out)], out
        )
        assert code == 0, text
        _, (af_config,) = cli.parse_train(_cli_args("afedpg", out))
        _, af_ref, af_rows = train(af_config, None, num_devices=1, progress=False, tensorboard=False)
        af_dir = os.path.join(out, "afedpg+nigt")
        with open(os.path.join(af_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        assert len(rows) == len(af_rows)
        np.testing.assert_allclose([r["time"] for r in rows], [r["time"] for r in af_rows], rtol=1e-6)
        with ocp.CheckpointManager(os.path.join(af_dir, "checkpoints")) as manager:
            assert manager.latest_step() == int(af_ref.round) == rows[-1]["round"]
            restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(af_ref))
        chex.assert_trees_all_close(_host(restored.params), _host(af_ref.params), **TOL)


def test_launcher_stops_on_failure():
    """A child that fails makes the launcher stop the others and return its exit code."""
    with tempfile.TemporaryDirectory() as out:
        code, text = _launch(
            ["--num-processes", "2", "--", "--method", "bogus", "--out", out], out, timeout=120
        )
    assert code == 2, text
    assert "--method: must be one of rennala" in text


# ---------------------------------------------------------------------------------- clear errors
def test_mesh_must_divide_agents():
    config = TrainConfig(method="malenia", **dict(TINY, num_agents=3))
    with pytest.raises(ValueError, match=r"num_agents=3 must be divisible by the number of devices \(2\)"):
        Trainer(config, num_devices=2)


def test_more_devices_than_visible():
    with pytest.raises(ValueError, match=r"num_devices=9 but only 8 devices are visible"):
        Trainer(_config("rennala"), num_devices=9)
    with pytest.raises(ValueError, match="num_devices must be an int >= 1, got 0"):
        distributed.make_agent_mesh(0)


@pytest.mark.parametrize(
    "args, match",
    [
        (("127.0.0.1:1234", 2, 2), r"process_id must be in \[0, num_processes\)"),
        (("127.0.0.1:1234", 2, -1), r"process_id must be in \[0, num_processes\)"),
        (("127.0.0.1:1234", 0, 0), r"process_id must be in \[0, num_processes\)"),
        (("127.0.0.1:1234", 2, None), "needs all three"),
        ((None, 2, 0), "needs all three"),
        (("127.0.0.1:1234", None, 1), "needs all three"),
    ],
)
def test_inconsistent_multihost_arguments(args, match, monkeypatch):
    for name in ("JNIGT_COORDINATOR", "JNIGT_NUM_PROCESSES", "JNIGT_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=match):
        distributed.initialize(*args)


def test_multihost_environment_variables(monkeypatch):
    monkeypatch.setenv("JNIGT_COORDINATOR", "127.0.0.1:1234")
    monkeypatch.setenv("JNIGT_NUM_PROCESSES", "2")
    monkeypatch.delenv("JNIGT_PROCESS_ID", raising=False)
    with pytest.raises(ValueError, match="needs all three"):
        distributed.initialize()
    monkeypatch.setenv("JNIGT_PROCESS_ID", "0")
    monkeypatch.setenv("JNIGT_NUM_PROCESSES", "1")
    assert distributed.initialize() is False  # one process: nothing to start


def test_cli_reports_bad_multihost_arguments(capsys):
    from jnigt import cli

    code = cli.main(
        ["train", "--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--out", tempfile.gettempdir()]
    )
    assert code == 2
    assert "needs all three" in capsys.readouterr().err
