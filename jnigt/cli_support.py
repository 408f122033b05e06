"""Command-line plumbing shared by the ``jnigt`` commands: quiet dependency noise, one-line errors.

Nothing here runs on ``import jnigt``: the library never touches global warning filters, loggers or
stdout; only the command line calls these functions. Every user error ends in one line
``jnigt: error: ...`` and exit status 2 (:func:`run_cli`): a bad value, a command line tyro cannot
parse (:func:`parse`), a missing optional dependency (with the pip command that installs it); a
message names the flag the user typed (:func:`name_flags`).

Known noise (all irrelevant to jnigt, which uses brax's own pipelines and no warp kernels):

* ``mujoco.mjx.warp`` (imported by ``brax.envs`` through ``mujoco.mjx``) *prints* ``Failed to import
  warp: ...`` and ``Failed to import mujoco_warp: ...`` to stdout at import time when NVIDIA warp is
  not installed (once per process; twice when a launcher starts a second process).
* ``brax.io.mjcf.load_model`` warns (``UserWarning``) that brax "is not actively being maintained"
  every time an environment is built.
* ``jaxopt`` (imported by brax) warns (``DeprecationWarning``) that it is no longer maintained.
* orbax logs ``ERROR:absl:Failed to read Metadata file`` (and similar) through absl when it reads an
  unreadable checkpoint, which ``jnigt.training.run`` then reports (and sets aside) itself.
* NVIDIA warp (MuJoCo's warp pipelines) prints its banner when it initialises (``warp.config.quiet``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence

#: Lines that ``mujoco.mjx.warp`` prints at import when warp is missing.
NOISY_PRINTS = ("Failed to import warp:", "Failed to import mujoco_warp:")
#: (message regex, category, module regex) of the known-irrelevant warnings.
NOISY_WARNINGS = (
    (r"Brax System, piplines and environments are not actively being", UserWarning, r"brax\."),
    (r"JAXopt is no longer maintained", DeprecationWarning, r"jaxopt"),
)
#: loggers whose messages only repeat what jnigt reports itself (shown with --verbose)
NOISY_LOGGERS = ("absl",)
#: the optional dependencies: top-level module -> the pip command that installs it
EXTRAS = {"ray": 'pip install "jnigt[ray]"', "mujoco_playground": 'pip install "jnigt[playground]"'}


def quiet_dependency_noise(verbose: bool = False) -> None:
    """Silence the known import-time prints and warnings of brax / mujoco / jaxopt (``verbose`` keeps them).

    Imports ``mujoco.mjx`` now with stdout captured, re-printing every captured line that is not a
    known warp message, and installs warning filters for :data:`NOISY_WARNINGS`.
    """
    if verbose:
        return
    for message, category, module in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
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
    warp = sys.modules.get("warp")  # imported by mujoco.mjx where installed
    if warp is not None and hasattr(warp, "config"):
        warp.config.quiet = True


class UsageError(ValueError):
    """A command line that tyro could not parse: the message is tyro's on one line; ``box`` is tyro's
    own report (printed with ``--verbose``)."""

    def __init__(self, message: str, box: str = ""):
        super().__init__(message)
        self.box = box


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RULE = re.compile(r"^[─━\-╰╯]+$")


def _one_line(box: str, prog: str) -> str:
    """tyro's error box (UTF-8 or ASCII) as one line: its first section, and the first flag it suggests."""
    lines = [_ANSI.sub("", line).strip().strip("│┃|").strip() for line in box.splitlines()]
    lines = [line for line in lines if line]
    sections: list[list[str]] = [[]]
    for line in lines[1:]:  # lines[0]: the box's title ("Value error")
        if _RULE.match(line):
            sections.append([])
        else:
            sections[-1].append(line)
    sections = [s for s in sections if s]
    first = " ".join(sections[0]) if sections else " ".join(lines) or "cannot parse the options"
    first = re.sub(r"^Error parsing (\S+?):", r"\1:", first)
    meant = [s[1].split()[0] for s in sections[1:] if len(s) > 1 and s[0] == "Perhaps you meant:"]
    return first + (f"; did you mean {meant[0]}?" if meant else "") + f" (see {prog} --help)"


def parse(cls: type, args: Sequence[str], prog: str):
    """``tyro.cli(cls, args=args, prog=prog)``, with a parse error raised as :class:`UsageError` (one
    line) instead of tyro's box on stderr; ``--help`` prints and exits as usual."""
    import tyro

    captured, failed = io.StringIO(), False
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=list(args), prog=prog)
    except SystemExit as e:
        failed = e.code not in (0, None)
        if failed:
            raise UsageError(_one_line(captured.getvalue(), prog), captured.getvalue()) from None
        raise
    finally:
        if not failed:
            sys.stderr.write(captured.getvalue())


def flags_of(*classes: type) -> dict[str, str]:
    """``{field: "--field-name"}`` for the fields of the option dataclasses ``classes`` (tyro's spelling)."""
    return {f.name: "--" + f.name.replace("_", "-") for c in classes for f in dataclasses.fields(c)}


_LEADING_NAME = re.compile(r"^([A-Za-z_][\w.]*)(?=[:= ]|$)")
_IDENTIFIER = re.compile(r"(?<![\w.\-/'\"])([A-Za-z]\w*(?:[_.]\w+)+)(?![\w(])")


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with the setting names in it spelt as the flags a user types (``flags``: name ->
    flag): the name it starts with (``batch_size: ...``, ``n must be ...``) and every other name of
    ``flags`` with a ``_`` or ``.`` in it (``eval_every=10``; plain words are left alone)."""
    head = _LEADING_NAME.match(message)
    if head and head.group(1) in flags:
        message = flags[head.group(1)] + message[head.end() :]
    return _IDENTIFIER.sub(lambda m: flags.get(m.group(1), m.group(1)), message)


def _missing_module(error: BaseException) -> str | None:
    """The top-level name of the module whose import failed, following ``raise ... from``."""
    while error is not None:
        if isinstance(error, ImportError) and error.name:
            return error.name.split(".")[0]
        error = error.__cause__
    return None


def import_error_message(error: ImportError) -> str:
    """What is missing and the pip command that installs it."""
    message = " ".join(str(error).split()) or type(error).__name__
    name = _missing_module(error)
    install = EXTRAS.get(name) if name else None
    if install is None:
        install = "pip install -e . (or pip install jnigt) to restore jnigt's dependencies"
    return message if install in message.replace("'", '"') else f"{message}; install it with: {install}"


def error_line(error: BaseException, flags: Mapping[str, str] | None = None) -> str:
    """``jnigt: error: <message>`` on one line, setting names spelt as flags (:func:`name_flags`)."""
    if isinstance(error, ImportError):
        message = import_error_message(error)
    else:
        message = " ".join(str(error).split()) or type(error).__name__
    return f"jnigt: error: {name_flags(message, flags or {})}"


def run_cli(
    fn: Callable[[], int | None], verbose: bool = False, flags: Mapping[str, str] | None = None
) -> int:
    """Run a command; return its exit code (None = 0).

    A ``ValueError``, ``TypeError`` or ``OSError`` (bad input, unusable paths, :class:`UsageError`) or
    an ``ImportError`` (a missing optional dependency) becomes one line ``jnigt: error: <message>`` on
    stderr (:func:`error_line`, names spelt as ``flags``) and exit code 2, with the traceback only
    when ``verbose``. A ``KeyboardInterrupt`` gives ``jnigt: interrupted`` and 130. Anything else
    propagates (a bug).
    """
    try:
        code = fn()
    except (ValueError, TypeError, OSError, ImportError) as e:
        if verbose and isinstance(e, UsageError):
            sys.stderr.write(e.box)
        elif verbose:
            traceback.print_exc(file=sys.stderr)
        print(error_line(e, flags), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jnigt: interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)
