"""Body models behind one interface: :class:`BodyModel` -> :class:`BodyOutput`.

* ``"anny"`` (default): :class:`human3d.body.anny.AnnyBody`, embedded, needs no files;
* ``"smpl"``, ``"smplh"``, ``"smplx"``: :mod:`human3d.body.smpl`, from the user's official model files.

All share smplx's world frame (Y up, facing +Z, metres) and smplx parameter names (Anny: ``phenotypes`` for shape).
"""

from __future__ import annotations

from pathlib import Path

import torch

from human3d.body.model import BodyModel, BodyOutput
from human3d.errors import InvalidInputError

__all__ = ["BodyModel", "BodyOutput", "load_body_model", "MODEL_NAMES", "AnnyBody"]

MODEL_NAMES = ("anny", "smpl", "smplh", "smplx")


def load_body_model(
    name: str = "anny",
    model_path: str | Path | None = None,
    gender: str = "neutral",
    num_betas: int = 10,
    device: torch.device | str | None = None,
    **kw,
) -> BodyModel:
    """Create a body model by family name.

    Args:
        name: "anny" (embedded default), "smpl", "smplh" or "smplx".
        model_path: the official model file (or folder) for the SMPL family; must be None for Anny.
        gender: "neutral", "male" or "female" (SMPL family; Anny's gender is a phenotype).
        num_betas: number of shape coefficients (SMPL family).
        device: where to put the model (default CPU).
        **kw: passed to the model's constructor (e.g. ``skinning=``, ``dtype=`` for Anny).
    """
    key = str(name).lower()
    if key not in MODEL_NAMES:
        raise InvalidInputError(f"name: expected one of {list(MODEL_NAMES)}, got {name!r}")
    if key == "anny":
        if model_path is not None:
            raise InvalidInputError("model_path: the Anny model is embedded and takes no file; pass model_path=None")
        from human3d.body.anny import AnnyBody

        return AnnyBody(device=device, **kw)
    if model_path is None:
        raise InvalidInputError(
            f"model_path: model '{key}' needs the official {key.upper()} model file (.pkl or .npz), which "
            "human3d cannot ship; download it from the model's website and pass its path"
        )
    from human3d.body import smpl  # lazy: heavy, and written separately

    cls = {"smpl": "SMPL", "smplh": "SMPLH", "smplx": "SMPLX"}[key]
    model = getattr(smpl, cls)(model_path, gender=gender, num_betas=num_betas, **kw)
    return model.to(device) if device is not None else model


def __getattr__(name: str):
    if name == "AnnyBody":  # lazy: importing anny takes ~2 s
        from human3d.body.anny import AnnyBody

        return AnnyBody
    raise AttributeError(f"module 'human3d.body' has no attribute {name!r}")
