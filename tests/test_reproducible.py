"""Host-independent CPU code generation (jnigt.experiments.reproducible) and the machine record."""

import os
import subprocess
import sys

import jax
import pytest

from jnigt.experiments import reproducible

CHILD = """
import os, sys
from jnigt.experiments import reproducible
isa = reproducible.pin_codegen()
import jax, jax.numpy as jnp
jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) + 1)(jnp.ones(8)))
print("PINNED", isa, "FLAGS", os.environ["XLA_FLAGS"])
"""


def test_pin_reaches_xla_before_the_backend_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", reproducible.ENV)}
    env["XLA_FLAGS"] = f"--xla_dump_to={tmp_path}"
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"PINNED {reproducible.DEFAULT_ISA}" in res.stdout
    # XLA compiled with the pinned target (its dump of the debug options it used)
    options = [p for p in os.listdir(tmp_path) if p.endswith(".debug_options")]
    used = [open(tmp_path / p).read() for p in options]
    assert used and all('xla_cpu_max_isa: "AVX2"' in u for u in used), options
    assert all("xla_cpu_enable_platform_dependent_math: false" in u for u in used), used[0]


def test_pin_refuses_a_started_backend_and_keeps_explicit_or_native(monkeypatch):
    jax.devices()  # the suite's backend runs (tests/conftest.py), without the pin
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.delenv(reproducible.ENV, raising=False)
    with pytest.raises(ValueError, match=f"{reproducible.ENV}=native"):
        reproducible.pin_codegen()
    assert "max_isa" not in os.environ["XLA_FLAGS"]
    monkeypatch.setenv(reproducible.ENV, "native")
    assert reproducible.pin_codegen() is None and "max_isa" not in os.environ["XLA_FLAGS"]
    # chosen by hand: kept
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2 --xla_cpu_enable_platform_dependent_math=false")
    monkeypatch.delenv(reproducible.ENV)
    assert reproducible.pin_codegen() == "SSE4_2"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")  # one flag missing: cannot add it now
    with pytest.raises(ValueError, match="without --xla_cpu_enable_platform_dependent_math=false"):
        reproducible.pin_codegen()


def test_cli_experiment_commands_pin_or_say_why_not(monkeypatch, capsys, tmp_path):
    from jnigt import cli

    jax.devices()
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    monkeypatch.delenv(reproducible.ENV, raising=False)
    assert cli.main(["sweep", "--env", "lqr", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jnigt: error: JNIGT_XLA_ISA") and len(err.strip().splitlines()) == 1, err


def test_machine_records_cpu_flags_and_versions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    cpu = reproducible.cpu_info(str(info))
    assert cpu["model"] == "Test CPU 9000"
    assert cpu["isa"]["avx2"] and not cpu["isa"]["avx512f"]
    m = reproducible.machine()
    assert set(m["versions"]) == set(reproducible.LIBRARIES) and m["versions"]["jax"] == jax.__version__
    assert m["xla_flags"] == os.environ.get("XLA_FLAGS", "")
    assert "JAX_PLATFORMS" in m["jax_env"] and m["devices"]
