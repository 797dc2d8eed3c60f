"""BVH motion-capture reader, a format-independent ``Motion`` container and forward kinematics.

Conventions
-----------
* A BVH joint's rotation channels are *intrinsic* Euler angles in the order the channels are listed
  (``CHANNELS 3 Zrotation Xrotation Yrotation`` -> ``R = Rz(a0) @ Rx(a1) @ Ry(a2)``), in degrees in the file,
  radians here. The order is read per joint: some files mix orders (CMU 3dsMax-friendly arms use ZXY, the rest ZYX).
* A joint's local transform is ``[R_local | offset]`` in its parent's frame: the child head is
  ``p_child = p_parent + R_world_parent @ offset_child`` and ``R_world_child = R_world_parent @ R_local_child``.
  The root's translation comes from its position channels (``offset + position`` is *not* used: BVH exporters
  write absolute root positions). Position channels of non-root joints (Bandai Namco files carry them, equal to
  the offsets) are kept in ``BVH.values`` but FK uses the offsets.
* Lengths are multiplied by ``scale`` at load time, so pass the factor that turns the file's unit into metres
  (CMU: 0.056444, cm: 0.01, inch: 0.0254). The up axis is whatever the file uses (mostly Y); nothing is rotated.
* Rotation matrices act on column vectors; arrays are torch float64 (mocap chains are long and the data is
  small), batch-first over frames: ``[F, J, 3, 3]``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import torch

from human3d.errors import DatasetError, InvalidInputError, check_file
from human3d.geometry.rotations import euler_to_matrix

__all__ = [
    "BVH",
    "Motion",
    "read_bvh",
    "parse_bvh",
    "forward_kinematics",
    "rest_positions",
]

_ROT = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


@dataclasses.dataclass
class Motion:
    """A skeleton and its per-frame local joint rotations; the common currency of the mocap loaders.

    Any joint without rotation data has identity rotations.
    """

    names: list[str]
    """Joint names, ``J`` of them, parents before children."""
    parents: list[int]
    """Parent index of each joint, ``-1`` for the root (index 0)."""
    offsets: torch.Tensor
    """``[J, 3]`` rest offset of each joint's head from its parent's head, in the parent's frame (metres)."""
    end_offsets: torch.Tensor
    """``[J, 3]`` offset of the joint's first ``End Site`` (metres); NaN where the joint has none."""
    rotations: torch.Tensor
    """``[F, J, 3, 3]`` local rotation of each joint relative to its parent (identity = rest pose)."""
    root_positions: torch.Tensor
    """``[F, 3]`` world position of the root joint's head (metres)."""
    fps: float
    """Frames per second."""
    source: str = ""
    """Where the motion came from (a path), for error messages and provenance."""
    translations: torch.Tensor | None = None
    """``[F, J, 3]`` per-frame offsets replacing ``offsets`` in FK (BVH joints with position channels), or None."""

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name`` (``KeyError`` naming the joints present otherwise)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"joint {name!r} not in {self.source or 'motion'}; joints: {self.names}") from None

    def children(self, joint: int) -> list[int]:
        return [j for j, p in enumerate(self.parents) if p == joint]

    def slice(self, frames) -> "Motion":
        """A new Motion with the frames selected by ``frames`` (a slice, index list or boolean mask)."""
        return dataclasses.replace(
            self,
            rotations=self.rotations[frames],
            root_positions=self.root_positions[frames],
            translations=None if self.translations is None else self.translations[frames],
        )

    def subsample(self, max_fps: float) -> "Motion":
        """Keep every k-th frame, k the smallest integer with ``fps / k <= max_fps`` (within 0.1 %, so that a
        Frame Time of .0083333 still counts as 120 fps), without interpolation."""
        if max_fps <= 0:
            raise InvalidInputError(f"max_fps: expected > 0, got {max_fps}")
        step = max(1, math.ceil(self.fps / max_fps * (1 - 1e-3)))
        out = self.slice(slice(None, None, step))
        out.fps = self.fps / step
        return out

    def forward_kinematics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World joint head positions ``[F, J, 3]`` and world rotations ``[F, J, 3, 3]``."""
        offsets = self.offsets if self.translations is None else self.translations
        return forward_kinematics(self.parents, offsets, self.rotations, self.root_positions)

    def rest_positions(self) -> torch.Tensor:
        """``[J, 3]`` joint heads of the rest pose (zero rotations), root at the origin."""
        return rest_positions(self.parents, self.offsets)


@dataclasses.dataclass
class BVH:
    """A parsed BVH file: the hierarchy, its channels, and the raw motion values."""

    names: list[str]
    parents: list[int]
    offsets: torch.Tensor
    """``[J, 3]`` OFFSET of each joint, times ``scale``."""
    end_offsets: torch.Tensor
    """``[J, 3]`` OFFSET of the joint's first End Site, times ``scale``; NaN where none."""
    channels: list[list[str]]
    """Channel names of each joint, in file order (e.g. ``["Xposition", ..., "Zrotation", ...]``)."""
    channel_start: list[int]
    """Column of each joint's first channel in ``values``."""
    values: torch.Tensor
    """``[F, C]`` motion values as in the file (degrees, file units: ``scale`` is *not* applied here)."""
    frame_time: float
    """Seconds per frame."""
    scale: float = 1.0
    """Factor applied to offsets and root positions (file unit -> metres)."""
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def euler_orders(self) -> list[str]:
        """Per-joint Euler order read from its rotation channels (``""`` for a joint without rotations)."""
        return ["".join(_ROT[c] for c in chans if c in _ROT) for chans in self.channels]

    def local_rotations(self) -> torch.Tensor:
        """``[F, J, 3, 3]`` local rotation matrices (identity for joints without rotation channels)."""
        F, J = self.num_frames, len(self.names)
        out = torch.eye(3, dtype=torch.float64).expand(F, J, 3, 3).clone()
        # Group joints by Euler order so each group is one vectorised conversion.
        groups: dict[str, list[tuple[int, list[int]]]] = {}
        for j, chans in enumerate(self.channels):
            cols = [self.channel_start[j] + k for k, c in enumerate(chans) if c in _ROT]
            order = "".join(_ROT[c] for c in chans if c in _ROT)
            if not cols:
                continue
            if len(cols) != 3:
                # 1 or 2 rotation channels: pad to 3 with zero angles on the missing axes.
                missing = [a for a in "XYZ" if a not in order]
                order = order + "".join(missing)
                cols = cols + [-1] * len(missing)
            groups.setdefault(order, []).append((j, cols))
        padded = torch.cat([self.values, torch.zeros(F, 1, dtype=self.values.dtype)], dim=1)  # col -1 -> 0
        for order, items in groups.items():
            joints = [j for j, _ in items]
            cols = torch.tensor([c for _, c in items])  # [G, 3]
            angles = padded[:, cols]  # [F, G, 3] degrees
            out[:, joints] = euler_to_matrix(angles, order, degrees=True)
        return out

    def root_positions(self) -> torch.Tensor:
        """``[F, 3]`` root head positions (metres): the root's position channels times ``scale``.

        A root without position channels stays at its OFFSET.
        """
        chans = self.channels[0]
        pos = self.offsets[0].expand(self.num_frames, 3).clone()
        for k, c in enumerate(chans):
            if c in _POS:
                pos[:, _POS[c]] = self.values[:, self.channel_start[0] + k] * self.scale
        return pos

    def joint_translations(self) -> torch.Tensor | None:
        """``[F, J, 3]`` offsets with the position channels of non-root joints substituted (metres), or None
        when no non-root joint has position channels."""
        if not any(c in _POS for chans in self.channels[1:] for c in chans):
            return None
        out = self.offsets.expand(self.num_frames, -1, 3).clone()
        for j, chans in enumerate(self.channels):
            if j == 0:
                continue
            for k, c in enumerate(chans):
                if c in _POS:
                    out[:, j, _POS[c]] = self.values[:, self.channel_start[j] + k] * self.scale
        return out

    def to_motion(self, joint_positions: bool = True) -> Motion:
        """The generic :class:`Motion`. ``joint_positions``: use the position channels of non-root joints
        (replacing their OFFSET, the usual BVH reading) instead of the OFFSETs."""
        return Motion(
            names=list(self.names),
            parents=list(self.parents),
            offsets=self.offsets.clone(),
            end_offsets=self.end_offsets.clone(),
            rotations=self.local_rotations(),
            root_positions=self.root_positions(),
            fps=self.fps,
            source=self.source,
            translations=self.joint_translations() if joint_positions else None,
        )


def rest_positions(parents: list[int], offsets: torch.Tensor) -> torch.Tensor:
    """``[J, 3]`` heads of the rest pose: offsets summed along the chain, the root's head at the origin
    (its own OFFSET is ignored: in BVH the root translation is a channel)."""
    pos = torch.zeros_like(offsets)
    for j, p in enumerate(parents):
        if p >= 0:
            pos[j] = pos[p] + offsets[j]
    return pos


def forward_kinematics(
    parents: list[int], offsets: torch.Tensor, rotations: torch.Tensor, root_positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World joint heads ``[F, J, 3]`` and world rotations ``[F, J, 3, 3]``.

    ``offsets`` [J, 3] or per frame [F, J, 3] (parent frame), ``rotations`` [F, J, 3, 3] local,
    ``root_positions`` [F, 3].
    Loops over joints (tens), vectorised over frames.
    """
    F, J = rotations.shape[:2]
    world_rot = [None] * J
    world_pos = [None] * J
    for j, p in enumerate(parents):
        if p < 0:
            world_rot[j] = rotations[:, j]
            world_pos[j] = root_positions
        else:
            if p >= j:
                raise InvalidInputError(f"parents: joint {j} has parent {p}; parents must come first")
            world_rot[j] = world_rot[p] @ rotations[:, j]
            off = offsets[..., j, :].to(rotations.dtype)  # [3] or [F, 3]
            world_pos[j] = world_pos[p] + (world_rot[p] @ off[..., None])[..., 0]
    return torch.stack(world_pos, 1), torch.stack(world_rot, 1)


_TOKEN = re.compile(r"[{}]|[^\s{}]+")


def parse_bvh(text: str, scale: float = 1.0, source: str = "<string>") -> BVH:
    """Parse BVH ``text``. ``scale`` turns the file's length unit into metres. Raises ``DatasetError``."""
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise DatasetError(f"{source}: not a BVH file (no MOTION section)")
    tokens = _TOKEN.findall(head)
    if not tokens or tokens[0] != "HIERARCHY":
        raise DatasetError(f"{source}: not a BVH file (does not start with HIERARCHY)")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    end_offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []  # open joints; -2 marks an End Site block
    i = 1

    def need(k: int) -> list[str]:
        if i + k > len(tokens):
            raise DatasetError(f"{source}: truncated HIERARCHY")
        return tokens[i : i + k]

    def floats(vals: list[str], what: str) -> list[float]:
        try:
            return [float(v) for v in vals]
        except ValueError:
            raise DatasetError(f"{source}: bad number in {what}: {vals}") from None

    pending_parent = -1
    try:
        while i < len(tokens):
            t = tokens[i]
            if t in ("ROOT", "JOINT"):
                if t == "ROOT" and names:
                    raise DatasetError(f"{source}: several ROOT joints are not supported")
                name = need(2)[1]
                names.append(name)
                parents.append(pending_parent)
                offsets.append([0.0, 0.0, 0.0])
                end_offsets.append([math.nan] * 3)
                channels.append([])
                i += 2
                if need(1)[0] != "{":
                    raise DatasetError(f"{source}: expected '{{' after joint {name}")
                stack.append(len(names) - 1)
                pending_parent = len(names) - 1
                i += 1
            elif t == "End":
                i += 2  # "End Site"
                if need(1)[0] != "{":
                    raise DatasetError(f"{source}: expected '{{' after End Site")
                stack.append(-2)
                i += 1
            elif t == "OFFSET":
                vals = floats(need(4)[1:], "OFFSET")
                if not stack:
                    raise DatasetError(f"{source}: OFFSET outside a joint")
                if stack[-1] == -2:
                    owner = stack[-2]
                    if math.isnan(end_offsets[owner][0]):
                        end_offsets[owner] = vals
                else:
                    offsets[stack[-1]] = vals
                i += 4
            elif t == "CHANNELS":
                n = int(floats(need(2)[1:], "CHANNELS")[0])
                chans = need(2 + n)[2:]
                bad = [c for c in chans if c not in _ROT and c not in _POS]
                if bad or not stack or stack[-1] < 0:
                    raise DatasetError(f"{source}: bad CHANNELS {chans}")
                channels[stack[-1]] = chans
                i += 2 + n
            elif t == "}":
                if not stack:
                    raise DatasetError(f"{source}: unbalanced '}}'")
                stack.pop()
                pending_parent = next((s for s in reversed(stack) if s >= 0), -1)
                i += 1
            else:
                raise DatasetError(f"{source}: unexpected token {t!r} in HIERARCHY")
    except IndexError:
        raise DatasetError(f"{source}: truncated HIERARCHY") from None
    if stack:
        raise DatasetError(f"{source}: unbalanced braces in HIERARCHY")
    if not names:
        raise DatasetError(f"{source}: no joints")

    # MOTION section: "Frames: N", "Frame Time: t", then N rows of numbers.
    m = re.match(r"\s*Frames:\s*(\d+)\s*Frame Time:\s*([-+0-9.eE]+)\s*", motion)
    if not m:
        raise DatasetError(f"{source}: malformed MOTION header (expected 'Frames:' and 'Frame Time:')")
    n_frames, frame_time = int(m.group(1)), float(m.group(2))
    if not frame_time > 0:
        raise DatasetError(f"{source}: Frame Time must be > 0, got {frame_time}")
    n_chan = sum(len(c) for c in channels)
    body = motion[m.end():]
    try:
        flat = np.fromstring(body, dtype=np.float64, sep=" ")  # whitespace-separated text (raises on bad tokens)
    except ValueError:
        raise DatasetError(f"{source}: non-numeric value in MOTION data") from None
    if n_chan == 0 or flat.size < n_frames * n_chan:
        raise DatasetError(
            f"{source}: MOTION has {flat.size} values, expected {n_frames} frames x {n_chan} channels"
        )
    if n_frames == 0:
        raise DatasetError(f"{source}: no frames")
    values = torch.from_numpy(flat[: n_frames * n_chan].reshape(n_frames, n_chan).copy())
    if not bool(torch.isfinite(values).all()):
        raise DatasetError(f"{source}: NaN/inf in MOTION data")
    starts, c = [], 0
    for chans in channels:
        starts.append(c)
        c += len(chans)
    return BVH(
        names=names,
        parents=parents,
        offsets=torch.tensor(offsets, dtype=torch.float64) * scale,
        end_offsets=torch.tensor(end_offsets, dtype=torch.float64) * scale,
        channels=channels,
        channel_start=starts,
        values=values,
        frame_time=frame_time,
        scale=scale,
        source=source,
    )


def read_bvh(path, scale: float = 1.0) -> BVH:
    """Read a ``.bvh`` file. ``scale`` converts its length unit to metres (see module docstring)."""
    path = check_file(path, "BVH file", suffixes=(".bvh",))
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read BVH file ({e})") from e
    return parse_bvh(text, scale=scale, source=str(path))
