"""Command-line plumbing shared by the ``jnigt`` commands: quiet dependency noise, one-line errors.

Neither function runs on ``import jnigt``: the library never touches global warning filters or
stdout; only the command line calls them.

Known noise (all irrelevant to jnigt, which uses brax's own pipelines and no warp kernels):

* ``mujoco.mjx.warp`` (imported by ``brax.envs`` through ``mujoco.mjx``) *prints* ``Failed to import
  warp: ...`` and ``Failed to import mujoco_warp: ...`` to stdout at import time when NVIDIA warp is
  not installed (once per process; twice when a launcher starts a second process).
* ``brax.io.mjcf.load_model`` warns (``UserWarning``) that brax "is not actively being maintained"
  every time an environment is built.
* ``jaxopt`` (imported by brax) warns (``DeprecationWarning``) that it is no longer maintained.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
import warnings
from collections.abc import Callable

#: Lines that ``mujoco.mjx.warp`` prints at import when warp is missing.
NOISY_PRINTS = ("Failed to import warp:", "Failed to import mujoco_warp:")
#: (message regex, category, module regex) of the known-irrelevant warnings.
NOISY_WARNINGS = (
    (r"Brax System, piplines and environments are not actively being", UserWarning, r"brax\."),
    (r"JAXopt is no longer maintained", DeprecationWarning, r"jaxopt"),
)


def quiet_dependency_noise(verbose: bool = False) -> None:
    """Silence the known import-time prints and warnings of brax / mujoco / jaxopt (``verbose`` keeps them).

    Imports ``mujoco.mjx`` now with stdout captured, re-printing every captured line that is not a
    known warp message, and installs warning filters for :data:`NOISY_WARNINGS`.
    """
    if verbose:
        return
    for message, category, module in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    if "mujoco.mjx" in sys.modules:
        return  # already imported: whatever it printed is out
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            import mujoco.mjx  # noqa: F401  (prints the warp messages)
    except ImportError:
        pass
    finally:
        for line in captured.getvalue().splitlines():
            if not line.startswith(NOISY_PRINTS):
                print(line)


def error_line(error: BaseException) -> str:
    """``jnigt: error: <message>`` on one line."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"jnigt: error: {message}"


def run_cli(fn: Callable[[], int | None], verbose: bool = False) -> int:
    """Run a command; return its exit code (None = 0).

    A ``ValueError``, ``TypeError`` or ``OSError`` (bad input, unusable paths) becomes one line
    ``jnigt: error: <message>`` on stderr and exit code 2, with the traceback only when ``verbose``.
    A ``KeyboardInterrupt`` gives ``jnigt: interrupted`` and 130. Anything else propagates (a bug).
    """
    try:
        code = fn()
    except (ValueError, TypeError, OSError) as e:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(error_line(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jnigt: interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)
