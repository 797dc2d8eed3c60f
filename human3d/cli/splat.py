"""``human3d splat``: train 3D Gaussian splatting on a Blender/COLMAP scene, render, evaluate and export .ply
(shared commands: :mod:`human3d.cli.scene`). ``render`` / ``eval`` also take a 3DGS ``.ply`` (ours or any
tool's, binary or ASCII) with ``--data DATA``: the file's Gaussians seen by the dataset's cameras."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from human3d.cli.runner import check_output_file, command, say
from human3d.cli.scene import make_scene_app, open_run
from human3d.splat.config import PRESETS, preset
from human3d.splat.trainer import SplatTrainer


class PlyScene(SplatTrainer):
    """The Gaussians of a 3DGS ``.ply`` seen by the cameras of a dataset: what ``render`` / ``eval`` need of a
    trainer (splits, ``render``, ``evaluate``, ``render_split``, ``render_orbit``), without a run folder or any
    training state. Renders at the file's SH degree on ``data.background`` (white), dataset at full resolution;
    outputs default to ``<file without .ply>/``."""

    def __init__(self, ply: Path, data: Path):  # deliberately not Trainer.__init__: nothing to resume or write
        from generative.training import select_device
        from human3d.errors import InvalidInputError
        from human3d.splat.ply import load_ply

        data = Path(data).expanduser()
        if not data.is_dir():
            raise InvalidInputError(f"--data: '{data}' is not a dataset folder (Blender or COLMAP)")
        gaussians = load_ply(ply)
        self.config = preset("fast").replace(sh_degree=gaussians.max_sh_degree)
        self.run = self.config.run
        self.device = select_device(self.run.device)
        self.data, self.source, self.out = data.resolve(), Path(ply), Path(ply).with_suffix("")
        self.step, self.elapsed, self._splits = 0, 0.0, {}
        self.background = torch.tensor(self.config.data.background, dtype=torch.float32, device=self.device)
        self.gaussians = gaussians.to(self.device)

    def eval_info(self) -> dict:
        return {"n_gaussians": len(self.gaussians), "source": str(self.source)}


app = make_scene_app(
    SplatTrainer, PRESETS, preset,
    help="3D Gaussian splatting: train on a posed-image dataset, render views or an orbit video, evaluate "
         "PSNR/SSIM and export the standard 3DGS .ply. Presets: fast (CPU: capped Gaussians, coarse-to-fine, "
         "3000 steps), quality (the reference 30k-step schedule). render / eval also take a .ply with --data.",
    open_file=PlyScene,
)  # fmt: skip


@app.command()
@command
def export(
    run: Path = typer.Argument(..., help="Run folder written by 'human3d splat train'."),
    ply: Path = typer.Option(..., "--ply", help="Output path of the standard 3DGS .ply (read by splat viewers)."),
) -> None:
    """Export the trained Gaussians to the standard 3DGS .ply."""
    check_output_file(ply, "--ply", (".ply",))
    trainer = open_run(SplatTrainer, run)
    path = trainer.export_ply(ply)
    say(f"wrote {len(trainer.gaussians)} Gaussians to {path}")
