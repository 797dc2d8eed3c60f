"""Statistics of the built-in "simple" pose prior for Anny (``human3d.fitting.priors._ANNY_MEAN`` / ``_ANNY_STD``).

    .venv/bin/python tools/build_assets/simple_prior_stats.py                 # uses the cached pose dataset
    .venv/bin/python tools/build_assets/simple_prior_stats.py --rebuild-data  # retarget the mocap again

The poses are exactly the training set of the shipped learned priors (``tools/build_assets/train_pose_priors.py``:
:func:`human3d.data.mocap.list_clips` without the evaluation-only Bandai Namco clips, whole ``HOLDOUT`` clips
removed, retargeted to Anny at <= 30 fps); the dataset cache is shared with that script. Prints, per group axis-angle
component (order: the 17 pose groups x (x, y, z)), the mean and the standard deviation floored at ``--floor``
radians, formatted to paste into ``human3d/fitting/priors.py``, and the largest change against the arrays there.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import typer  # noqa: E402

app = typer.Typer(help="Mean / std of Anny's pose groups over the pose priors' training mocap (the simple prior).")


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
) -> None:
    """Print the simple prior's arrays."""
    from train_pose_priors import _dataset

    from human3d.fitting import priors

    work_dir.mkdir(parents=True, exist_ok=True)
    d = _dataset(work_dir, rebuild_data)
    x = d["train"].float()
    mean, std = simple_prior_stats(x, floor)
    groups = [n for n, _ in d["groups"]]
    assert groups == [n for n, _ in priors._ANNY_GROUPS], (groups, priors._ANNY_GROUPS)
    print(f"# {x.shape[0]} training poses from {len(d['train_clips'])} clips (held out: {', '.join(d['val_clips'])})")
    print(_fmt("_ANNY_MEAN", mean))
    print(_fmt("_ANNY_STD", std))
    old_m, old_s = torch.tensor(priors._ANNY_MEAN).double(), torch.tensor(priors._ANNY_STD).double()
    dm, ds = (mean - old_m).abs(), (std - old_s).abs()
    print(f"# vs priors.py: max |d mean| {float(dm.max()):.3f} rad ({groups[int(dm.argmax()) // 3]}), "
          f"max |d std| {float(ds.max()):.3f} rad ({groups[int(ds.argmax()) // 3]})")


if __name__ == "__main__":
    app()
