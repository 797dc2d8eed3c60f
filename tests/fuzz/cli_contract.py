"""The bad-input contract every ``human3d`` command keeps, as one checker and a table type.

A :class:`Case` is one bad input to one command: ``args(d, out)`` builds the command line from the shared input
folder ``d`` (``conftest.fz``) and a fresh output folder ``out``; ``names`` are strings the error line must
contain (the offending file or option); ``outputs`` the paths the command must not leave half-written.
``kind="error"`` is an error from the command itself (exactly one line ``error: ...`` on stderr); ``kind="skipped"``
a fit where every image or person was skipped (one line each naming it and why, the summary, ``error: ...``);
``kind="usage"`` is an option value refused by click before the command runs (its usage panel, which names the
option). Either way: exit 2, no traceback, nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import typer.main
from typer.testing import CliRunner

from human3d.cli.main import app


@dataclass
class Case:
    command: str  # as typed: "nerf train"
    id: str
    args: Callable[[Path, Path], list]  # (inputs folder, output folder) -> arguments after the command
    names: Callable[[Path, Path], list] = lambda d, out: []  # strings the message must name
    outputs: Callable[[Path, Path], list] = lambda d, out: [out / "result"]
    kind: str = "error"
    xfail: str | None = None  # a known bug (strict xfail), with its reason
    marks: list = field(default_factory=list)


def leaf_commands() -> list[str]:
    """Every command of the ``human3d`` app, as typed (``"nerf train"``)."""
    root = typer.main.get_command(app)
    ctx = click.Context(root)

    def walk(cmd, prefix):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), prefix + [name])
        else:
            yield " ".join(prefix)

    return list(walk(root, []))


def invoke(args: list) -> click.testing.Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def check_bad_input(result, names=(), outputs=(), kind: str = "error") -> str:
    """Assert the contract on a finished invocation; return the error text."""
    err = result.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    where = f"exit {result.exit_code}, stderr:\n{err}\nstdout:\n{result.stdout}"
    assert result.exit_code == 2, where
    assert "Traceback" not in err and "Traceback" not in result.stdout, where
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), where
    if kind == "error":
        assert len(lines) == 1 and lines[0].startswith("error: "), where
        text = lines[0]
    elif kind == "skipped":  # fit: a line per skipped image or person, the summary line, then the error line
        assert lines and lines[-1].startswith("error: ") and all(ln.startswith(("skipped ", "warning", "fitted "))
                                                                 for ln in lines[:-1]), where  # fmt: skip
        text = " ".join(lines)
    else:  # click's usage panel: the error line names the option
        text = " ".join(" ".join(ln.strip("│╭╮╰╯─ ").split()) for ln in lines)
        assert "Invalid value" in text or "Missing" in text or "No such option" in text, where
    for n in names:
        assert str(n) in text, f"{n!r} not named in: {text}"
    for p in outputs:
        p = Path(p)
        if p.is_dir():
            assert (p / "summary.json").is_file() or not any(p.iterdir()), f"half-written folder {p}: {list(p.iterdir())}"
        else:
            assert not p.exists(), f"half-written file {p}"
        if p.parent.is_dir():  # atomic writes leave no '.NAME.*' temporaries behind
            assert not [q for q in p.parent.rglob(".*") if q.is_file()], f"temporaries left in {p.parent}"
    return text
