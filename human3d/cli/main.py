"""The ``human3d`` command line (typer). Sub-commands live in their own modules and are registered here."""

from __future__ import annotations

import typer

from human3d.cli import body as body_cli
from human3d.cli import fit as fit_cli
from human3d.cli import nerf as nerf_cli
from human3d.cli import splat as splat_cli
from human3d.cli.runner import command, set_debug

app = typer.Typer(
    name="human3d",
    help="3D humans and neural rendering: body models, fitting, NeRF and Gaussian splatting. Exit codes: 0 done; "
    "1 internal error (add --debug for the traceback); 2 bad input (the message names the file or option); "
    "130 interrupted (trainers save their checkpoint first).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show the traceback of internal errors (exit code 1) "
                                     "instead of a one-line message.")) -> None:
    """3D humans and neural rendering: body models, fitting, NeRF and Gaussian splatting.

    Exit codes: 0 done; 1 internal error; 2 bad input (the message names the file or option); 130 interrupted
    (trainers save their checkpoint first)."""
    set_debug(debug)

app.add_typer(body_cli.app, name="body")
app.command("demo", help=body_cli.demo.__doc__)(body_cli.demo)
app.command("fit", help=fit_cli.fit.__doc__)(command(fit_cli.fit))
app.command("detect", help=__import__("human3d.cli.detect", fromlist=["detect"]).detect.__doc__)(__import__("human3d.cli.detect", fromlist=["detect"]).detect)
app.add_typer(nerf_cli.app, name="nerf")
app.add_typer(splat_cli.app, name="splat")
app.add_typer(__import__("human3d.cli.synth", fromlist=["app"]).app, name="synth")
app.add_typer(__import__("human3d.cli.pose2d", fromlist=["app"]).app, name="pose2d")
app.add_typer(__import__("human3d.cli.hmr", fromlist=["app"]).app, name="hmr")
app.add_typer(__import__("human3d.cli.implicit", fromlist=["app"]).app, name="implicit")
app.add_typer(__import__("human3d.cli.dvr", fromlist=["app"]).app, name="dvr")
app.add_typer(__import__("human3d.cli.photos", fromlist=["app"]).app, name="scene")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
