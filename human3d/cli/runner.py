"""The one runner every ``human3d`` command goes through: errors, exit codes and the ``--debug`` switch.

Exit codes (the same for every command):

* ``0``: done;
* ``1``: an internal error (a bug): one line naming it; ``human3d --debug ...`` shows the traceback;
* ``2``: bad input (a missing or malformed file, a bad option value, an unusable output path): one line naming
  the file or option and what was expected;
* ``130``: interrupted (Ctrl-C / SIGTERM); trainers save their checkpoint first and say where.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from human3d.errors import Human3DError, InvalidInputError

__all__ = ["console", "say", "command", "check_output_dir", "check_output_file", "EXIT_BAD_INPUT", "EXIT_INTERNAL",
           "EXIT_INTERRUPTED", "set_debug"]

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

console = Console(stderr=True, soft_wrap=True, highlight=False)
_state = {"debug": False}

F = TypeVar("F", bound=Callable)


def set_debug(on: bool) -> None:
    """Show tracebacks of internal errors (``human3d --debug``)."""
    _state["debug"] = bool(on)


def say(msg: str) -> None:
    """A progress or result line on stderr (stdout stays free for machine-readable output)."""
    console.print(msg, markup=False)


def _error(prefix: str, msg: str, style: str = "red") -> None:
    console.print(Text(prefix + " ", style=style) + Text(" ".join(str(msg).split("\n"))))


def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path, option: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be (or already is) a writable folder; raise a one-line
    ``InvalidInputError`` naming ``option`` otherwise (an existing file, a file on the way, no write permission)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"{option}: '{path}' exists and is a file (expected a folder or a new name)")
    base = _first_existing(path)
    if not base.is_dir():
        raise InvalidInputError(f"{option}: cannot create '{path}': '{base}' is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{option}: cannot write to '{path}': no write permission in '{base}'")
    return path


def check_output_file(path, option: str = "--out", suffixes: tuple[str, ...] | None = None) -> Path:
    """Check, before any work, that a file can be written at ``path`` (with one of ``suffixes``)."""
    path = Path(path).expanduser()
    if suffixes and path.suffix.lower() not in suffixes:
        raise InvalidInputError(f"{option}: expected a file name ending in {' or '.join(suffixes)}, got '{path}'")
    if path.is_dir():
        raise InvalidInputError(f"{option}: '{path}' is a folder (expected a file name)")
    check_output_dir(path.parent, option)
    return path


def command(fn: F) -> F:
    """Wrap a typer command: human3d errors and file errors -> one line + exit 2, interrupts -> exit 130,
    anything else -> one line + exit 1 (the traceback with ``--debug``)."""
    from human3d.train.core import TrainingInterrupted

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except TrainingInterrupted as e:
            _error("interrupted:", str(e), "yellow")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except KeyboardInterrupt:
            _error("interrupted:", "stopped by the user", "yellow")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (Human3DError, OSError) as e:
            if _state["debug"]:
                raise
            _error("error:", str(e))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except Exception as e:  # a bug: say what it is in one line
            if _state["debug"]:
                raise
            _error("internal error:", f"{type(e).__name__}: {e} (run `human3d --debug ...` for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]
