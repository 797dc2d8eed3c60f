"""The one CLI runner: exit codes, one-line errors, --debug, and output locations checked before any work."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from human3d.cli.runner import check_output_dir, check_output_file, command, set_debug
from human3d.errors import InvalidInputError


def _app(fn):
    app = typer.Typer()
    app.command()(command(fn))
    app.command("other")(lambda: None)
    return app


@pytest.mark.parametrize("exc,code,text", [
    (InvalidInputError("--foo: expected a number, got 'x'"), 2, "error: --foo: expected a number"),
    (FileNotFoundError(2, "No such file or directory", "/nope/x.json"), 2, "/nope/x.json"),
    (RuntimeError("boom"), 1, "internal error: RuntimeError: boom (run `human3d --debug"),
    (KeyboardInterrupt(), 130, "interrupted"),
])  # fmt: skip
def test_exit_codes_and_one_line_messages(exc, code, text):
    def fail():
        raise exc

    r = CliRunner().invoke(_app(fail), ["fail"])
    assert r.exit_code == code, r.output
    assert text in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    def fail():
        raise RuntimeError("boom")

    set_debug(True)
    try:
        r = CliRunner().invoke(_app(fail), ["fail"])
    finally:
        set_debug(False)
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)


def test_output_locations_are_checked(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    with pytest.raises(InvalidInputError, match="--out: '.*file' exists and is a file"):
        check_output_dir(f)
    with pytest.raises(InvalidInputError, match="--out: cannot create .*file/sub.*is a file"):
        check_output_dir(f / "sub")
    with pytest.raises(InvalidInputError, match="--ply: expected a file name ending in .ply"):
        check_output_file(tmp_path / "x.txt", "--ply", (".ply",))
    with pytest.raises(InvalidInputError, match="is a folder"):
        check_output_file(tmp_path, "--video")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(InvalidInputError, match="no write permission"):
            check_output_dir(ro / "x")


def test_top_level_help_lists_the_exit_codes():
    from human3d.cli.main import app

    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "130" in r.output
