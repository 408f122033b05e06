"""jnigt.cli_support: quiet dependency noise at the command line, one-line errors with exit code 2."""

import os
import subprocess
import sys

import pytest

from jnigt import cli_support

_BUILD_ENV = (
    "import logging; logging.basicConfig(); "
    "from jnigt.cli_support import quiet_dependency_noise; quiet_dependency_noise(verbose={verbose}); "
    "import jnigt_envs; jnigt_envs.make_env('inverted_pendulum', backend='spring'); print('built'); "
    "from absl import logging as absl_logging; absl_logging.error('Failed to read Metadata file: x')"
)


def _run(code):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_dependency_noise_is_quiet_unless_verbose():
    quiet = _run(_BUILD_ENV.format(verbose=False))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "built"
    out = quiet.stdout + quiet.stderr
    for noise in (
        "Failed to import warp",
        "Failed to import mujoco_warp",
        "not actively being maintained",
        "Failed to read Metadata file",  # orbax through absl, on an unreadable checkpoint
    ):
        assert noise not in out
    loud = _run(_BUILD_ENV.format(verbose=True))
    out = loud.stdout + loud.stderr
    assert "built" in out
    # the noise is real (so the quiet run above proves something) wherever warp is missing
    try:
        import warp  # noqa: F401
    except ImportError:
        assert "Failed to import warp" in out
    assert "not actively being maintained" in out
    assert "ERROR:absl:Failed to read Metadata file" in out


def test_importing_jnigt_installs_no_quieting_filter():
    r = _run(
        "import warnings, jnigt, jnigt.transforms, jnigt.training, jnigt_envs; "
        "print(any(f[1] is not None and 'Brax System' in f[1].pattern for f in warnings.filters))"
    )
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout + r.stderr


def test_run_cli_turns_bad_input_into_one_line_and_exit_code_2(capsys):
    def bad():
        raise ValueError("batch_size: must be an int >= 1,\n got 0")

    assert cli_support.run_cli(bad) == 2
    err = capsys.readouterr().err
    assert err == "jnigt: error: batch_size: must be an int >= 1, got 0\n"
    assert cli_support.run_cli(bad, verbose=True) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("jnigt: error: batch_size: must be an int >= 1, got 0\n")
    for exc in (TypeError("t"), NotADirectoryError(20, "Not a directory", "/x/y")):

        def raiser(exc=exc):
            raise exc

        assert cli_support.run_cli(raiser) == 2
        assert capsys.readouterr().err.startswith("jnigt: error: ")
    assert cli_support.run_cli(lambda: None) == 0
    assert cli_support.run_cli(lambda: 3) == 3

    def bug():
        raise RuntimeError("a bug, not bad input")

    with pytest.raises(RuntimeError):
        cli_support.run_cli(bug)
