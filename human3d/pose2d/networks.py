"""Heatmap networks in plain torch (no torchvision): a small SimpleBaseline and a CPM-style multi-stage network.

Both map an image crop ``[B, 3, S, S]`` (RGB in [0, 1], normalised inside the network) to ``K`` heatmaps at
stride 4, ``[B, K, S/4, S/4]``, in the codec's convention (:mod:`human3d.pose2d.heatmaps`: heatmap cell ``(i, j)``
covers crop pixels ``[4j, 4j+4) x [4i, 4i+4)``, so ``uv_crop = 4 * uv_heatmap``). ``forward`` returns the final
heatmaps; ``forward_stages`` returns every supervised output (one for SimpleBaseline, one per stage for CPM) for
intermediate supervision.

* :class:`SimpleBaseline` (Xiao et al., "Simple Baselines for Human Pose Estimation", ECCV 2018): a residual
  backbone down to stride 32, then transposed convolutions (4x4, stride 2) back to stride 4 and a 1x1 head.
* :class:`CPM` (Wei et al., "Convolutional Pose Machines", CVPR 2016): shared features at stride 4; stage 1
  predicts heatmaps from them, each later stage sees the features *and* the previous stage's heatmaps through
  dilated 3x3 convolutions, so the receptive field grows with every stage (the spatial context between parts
  that CPM is about); every stage's output is supervised (against vanishing gradients).

The default widths give about 0.5 M parameters (:func:`count_parameters`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from human3d.errors import InvalidInputError

__all__ = ["SimpleBaseline", "CPM", "build_network", "count_parameters", "STRIDE", "weights_dir", "load_network"]

STRIDE = 4  # heatmap stride of every network here
# ImageNet statistics: a conventional fixed input normalisation (no pretrained weights are used)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
              nn.BatchNorm2d(cout)]  # fmt: skip
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity (or 1x1 projection) shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, 3, relu=False))
        self.short = (nn.Identity() if stride == 1 and cin == cout
                      else _conv_bn(cin, cout, 1, stride, relu=False))  # fmt: skip
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class _Normalise(nn.Module):
    """RGB in [0, 1] -> ImageNet-normalised (fixed buffers)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _check_input(x: torch.Tensor) -> None:
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] == 3):
        raise InvalidInputError(f"images: expected a [B, 3, S, S] tensor, got {getattr(x, 'shape', type(x))}")
    if x.shape[-1] % 32 or x.shape[-2] % 32:
        raise InvalidInputError(f"images: expected height and width divisible by 32, got {tuple(x.shape[-2:])}")


class SimpleBaseline(nn.Module):
    """Residual backbone to stride 32 + ``len(deconv)`` transposed convolutions to stride 4 + 1x1 head.

    Args:
        num_joints: ``K`` heatmaps.
        widths: channels of the stem (stride 2) and the four residual stages (strides 4, 8, 16, 32).
        blocks: residual blocks per stage.
        deconv: channels of the three 4x4 stride-2 transposed convolutions (stride 32 -> 4).
    """

    def __init__(self, num_joints: int = 17, widths=(16, 24, 48, 80, 112), blocks=(1, 1, 1, 1),
                 deconv=(64, 48, 48)):  # fmt: skip
        super().__init__()
        if len(widths) != 5 or len(blocks) != 4 or len(deconv) != 3:
            raise InvalidInputError(f"SimpleBaseline: expected 5 widths, 4 block counts and 3 deconv widths, got "
                                    f"{widths}, {blocks}, {deconv}")  # fmt: skip
        self.num_joints = num_joints
        self.norm = _Normalise()
        layers: list[nn.Module] = [_conv_bn(3, widths[0], 3, 2)]
        cin = widths[0]
        for cout, n in zip(widths[1:], blocks):
            for b in range(n):
                layers.append(BasicBlock(cin, cout, 2 if b == 0 else 1))
                cin = cout
        self.backbone = nn.Sequential(*layers)
        ups: list[nn.Module] = []
        for cout in deconv:
            ups += [nn.ConvTranspose2d(cin, cout, 4, 2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
            cin = cout
        self.deconv = nn.Sequential(*ups)
        self.head = nn.Conv2d(cin, num_joints, 1)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, S, S]`` -> ``[heatmaps [B, K, S/4, S/4]]``."""
        _check_input(x)
        return [self.head(self.deconv(self.backbone(self.norm(x))))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]


class CPM(nn.Module):
    """Convolutional-Pose-Machine-style network: shared stride-4 features, ``stages`` predictors, each after the
    first refining the previous heatmaps with dilated 3x3 convolutions (growing receptive field).

    Args:
        num_joints: ``K`` heatmaps.
        feat: channels of the shared stride-4 features.
        width: channels inside each stage.
        stages: number of stages (each supervised).
        dilations: dilation of each 3x3 convolution in a stage (the receptive field grows by
            ``2 * 4 * sum(dilations)`` input pixels per stage).
    """

    def __init__(self, num_joints: int = 17, feat: int = 40, width: int = 40, stages: int = 3,
                 dilations=(1, 2, 4, 8)):  # fmt: skip
        super().__init__()
        if not (isinstance(stages, int) and stages >= 1):
            raise InvalidInputError(f"CPM: stages: expected a positive int, got {stages!r}")
        self.num_joints = num_joints
        self.norm = _Normalise()
        self.features = nn.Sequential(
            _conv_bn(3, 24, 3, 2), BasicBlock(24, 32, 2), BasicBlock(32, feat, 1),
        )  # stride 4
        self.stages = nn.ModuleList()
        for s in range(stages):
            cin = feat if s == 0 else feat + num_joints
            layers = [_conv_bn(cin, width, 3)]
            layers += [_conv_bn(width, width, 3, dilation=d) for d in dilations]
            layers.append(nn.Conv2d(width, num_joints, 1))
            nn.init.normal_(layers[-1].weight, std=0.001)
            nn.init.zeros_(layers[-1].bias)
            self.stages.append(nn.Sequential(*layers))

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, S, S]`` -> one ``[B, K, S/4, S/4]`` per stage (the last is the prediction)."""
        _check_input(x)
        f = self.features(self.norm(x))  # [B, C, S/4, S/4]
        outs = [self.stages[0](f)]
        for stage in self.stages[1:]:
            outs.append(stage(torch.cat([f, outs[-1]], 1)))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]


def build_network(arch: str, num_joints: int = 17, **kwargs) -> nn.Module:
    """``"simple"`` -> :class:`SimpleBaseline`, ``"cpm"`` -> :class:`CPM` (``kwargs``: their arguments)."""
    if arch == "simple":
        return SimpleBaseline(num_joints, **kwargs)
    if arch == "cpm":
        return CPM(num_joints, **kwargs)
    raise InvalidInputError(f"arch: expected 'simple' or 'cpm', got {arch!r}")


def weights_dir():
    """The folder of the shipped pose2d weights (``human3d/pose2d/weights``; package data found through
    :mod:`importlib.resources`, editable and wheel installs alike)."""
    import importlib.resources
    from pathlib import Path

    from human3d.errors import ModelFileError

    folder = importlib.resources.files("human3d.pose2d") / "weights"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise ModelFileError(f"pose2d weights folder {folder!s}: expected a folder on disk (install the package "
                             "unzipped, or build the weights with tools/build_assets/train_pose2d.py)")  # fmt: skip
    return folder


def load_network(path=None, name: str = "pose2d_simple_coco17") -> tuple[nn.Module, dict]:
    """A network from a safetensors file written by :meth:`human3d.pose2d.train.Pose2DTrainer.export_weights`
    (default: the shipped ``weights/<name>.safetensors``) -> ``(net in eval mode, metadata)``; the metadata holds
    ``model`` (its :class:`~human3d.pose2d.train.Pose2DModelConfig`), ``crop_size`` and ``padding``."""
    import json
    from pathlib import Path

    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from human3d.errors import ModelFileError
    from human3d.pose2d.train import Pose2DModelConfig

    path = Path(path) if path is not None else weights_dir() / f"{name}.safetensors"
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        tensors = load_file(str(path))
        model_cfg = Pose2DModelConfig.from_dict(json.loads(meta["model"]))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise ModelFileError(f"pose2d weights '{path}': unreadable or not written by export_weights ({e})") from None
    net = model_cfg.build(17)
    try:
        net.load_state_dict(tensors)
    except RuntimeError as e:
        raise ModelFileError(f"pose2d weights '{path}': tensors do not match the model config ({e})") from None
    meta["crop_size"], meta["padding"] = int(meta.get("crop_size", 128)), float(meta.get("padding", 1.25))
    return net.eval(), meta
