"""Statistics of the built-in "simple" pose prior (``human3d.fitting.priors._ANNY_MEAN`` / ``_ANNY_STD``, and
``_SMPL_MEAN`` / ``_SMPL_STD`` for the SMPL family).

    .venv/bin/python tools/build_assets/simple_prior_stats.py                 # Anny, uses the cached pose dataset
    .venv/bin/python tools/build_assets/simple_prior_stats.py --family smpl   # SMPL / SMPL-H / SMPL-X body_pose
    .venv/bin/python tools/build_assets/simple_prior_stats.py --rebuild-data  # retarget the mocap again

The poses are exactly the training set of the shipped learned priors (``tools/build_assets/train_pose_priors.py``:
:func:`human3d.motion.mocap.list_clips` without the evaluation-only Bandai Namco clips, whole ``HOLDOUT`` clips
removed, retargeted to Anny at <= 30 fps); the dataset cache is shared with that script. Prints, per group axis-angle
component (order: the 17 pose groups x (x, y, z)), the mean and the standard deviation floored at ``--floor``
radians, formatted to paste into ``human3d/fitting/priors.py``, and the largest change against the arrays there.

``--family smpl``: the same poses mapped onto SMPL's joints (``train_pose_priors.smpl_body_vectors``: group vectors ->
Anny ``body_pose`` -> :func:`human3d.fitting.synthetic.smpl_pose_from_anny` at zero ``global_orient``), the first
21 ``body_pose`` joints (63 components: SMPL's ``_SMPL_BODY`` x (x, y, z), SMPL's T-pose rest convention).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import typer  # noqa: E402

app = typer.Typer(help="Mean / std of the pose groups over the pose priors' training mocap (the simple prior).")


def simple_prior_stats(x: torch.Tensor, floor: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-component mean ``[D]`` and standard deviation ``[D]`` (floored at ``floor`` radians) of poses ``[N, D]``."""
    x = x.double()
    return x.mean(0), x.std(0).clamp_min(floor)


def _fmt(name: str, v: torch.Tensor, per_line: int = 15) -> str:
    vals = [repr(round(float(a), 3) + 0.0) for a in v]  # + 0.0: no "-0.0"
    lines = [", ".join(vals[i : i + per_line]) + "," for i in range(0, len(vals), per_line)]
    return f"{name} = [\n" + "\n".join("    " + ln for ln in lines) + "\n]  # fmt: skip"


@app.command()
def main(
    work_dir: Path = typer.Option(ROOT / ".cache" / "pose_priors", help="Dataset cache (shared with "
                                  "train_pose_priors.py)."),
    rebuild_data: bool = typer.Option(False, help="Retarget the mocap again instead of using the cached dataset."),
    floor: float = typer.Option(0.1, help="Lower bound of each standard deviation (radians)."),
    family: str = typer.Option("anny", help="'anny' (51-D pose groups) or 'smpl' (first 21 SMPL body_pose joints, "
                               "63-D, shared by SMPL, SMPL-H and SMPL-X)."),
) -> None:
    """Print the simple prior's arrays."""
    from train_pose_priors import dataset

    from human3d.fitting import priors

    work_dir.mkdir(parents=True, exist_ok=True)
    d = dataset(work_dir, rebuild_data, family)
    x = d["train"].float()
    mean, std = simple_prior_stats(x, floor)
    groups = [n for n, _ in d["groups"]]
    expected = [n for n, _ in priors._ANNY_GROUPS] if family == "anny" else list(priors._SMPL_BODY)
    assert groups == expected, (groups, expected)
    prefix = "_ANNY" if family == "anny" else "_SMPL"
    print(f"# {x.shape[0]} training poses from {len(d['train_clips'])} clips (held out: {', '.join(d['val_clips'])})")
    print(_fmt(f"{prefix}_MEAN", mean))
    print(_fmt(f"{prefix}_STD", std))
    old_m, old_s = getattr(priors, f"{prefix}_MEAN"), getattr(priors, f"{prefix}_STD")
    if not (isinstance(old_m, list) and isinstance(old_s, list) and len(old_m) == len(old_s) == mean.numel()):
        print(f"# priors.py's {prefix}_MEAN / {prefix}_STD have another layout: not compared")
        return
    old_m, old_s = torch.tensor(old_m).double(), torch.tensor(old_s).double()
    dm, ds = (mean - old_m).abs(), (std - old_s).abs()
    print(f"# vs priors.py: max |d mean| {float(dm.max()):.3f} rad ({groups[int(dm.argmax()) // 3]}), "
          f"max |d std| {float(ds.max()):.3f} rad ({groups[int(ds.argmax()) // 3]})")


if __name__ == "__main__":
    app()
