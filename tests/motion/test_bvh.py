"""BVH reader: every shared file parses (against MANIFEST.tsv), rest FK = summed OFFSETs (read independently),
closed-form FK on a hand-written file, Euler orders against scipy, units, subsampling, bad input."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human3d.motion.bvh import forward_kinematics, parse_bvh, read_bvh
from human3d.data.paths import shared_data_dir
from human3d.errors import DatasetError, InvalidInputError

DATA = shared_data_dir()
SUBJECT131 = DATA / "cmu_mocap_bvh_subject131"
MORE = DATA / "mocap_bvh_more"


def _manifest() -> dict[str, dict]:
    with open(MORE / "MANIFEST.tsv", newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_every_shared_bvh_parses_as_the_manifest_says():
    rows = {p: r for p, r in _manifest().items() if p.endswith(".bvh")}
    assert len(rows) == 71  # 16 CMU + 5 AnimatedDrawings + 50 Bandai Namco
    for rel, row in rows.items():
        b = read_bvh(MORE / rel)
        assert len(b.names) == int(row["joints"]), rel
        assert sum(len(c) for c in b.channels) == int(row["channels_or_width"]), rel
        assert b.num_frames == int(row["frames"]), rel
        assert b.fps == pytest.approx(float(row["fps"]), rel=1e-3), rel
    for p in sorted(SUBJECT131.glob("*.bvh")):  # SOURCE.md: 994 / 1247 / 1102 frames at 120 fps, 96 channels
        b = read_bvh(p)
        assert (len(b.names), b.values.shape[1], b.fps) == (31, 96, pytest.approx(120.0, rel=1e-4))
    assert [read_bvh(p).num_frames for p in sorted(SUBJECT131.glob("*.bvh"))] == [994, 1247, 1102]


def test_mixed_euler_orders_are_read_per_joint():
    b = read_bvh(SUBJECT131 / "131_01.bvh")
    orders = dict(zip(b.names, b.euler_orders))
    assert orders["Hips"] == "ZYX" and orders["LeftKnee"] == "ZYX"
    assert orders["LeftShoulder"] == "ZXY" and orders["RThumb"] == "ZXY"  # 3dsMax-friendly arms
    # Local rotations against scipy (intrinsic upper-case orders), on real frames.
    R = b.local_rotations()[::97]  # [F, J, 3, 3]
    vals = b.values[::97].numpy()
    for j, (name, order) in enumerate(zip(b.names, b.euler_orders)):
        cols = [b.channel_start[j] + k for k, c in enumerate(b.channels[j]) if c.endswith("rotation")]
        ref = Rotation.from_euler(order, vals[:, cols], degrees=True).as_matrix()
        np.testing.assert_allclose(R[:, j].numpy(), ref, atol=1e-9, err_msg=name)


def _offsets_by_regex(text: str) -> tuple[list[str], np.ndarray]:
    """Independent reading of the hierarchy: rest joint heads by walking the braces and OFFSET lines."""
    names, heads = [], {}
    stack = []  # [name, parent head, own head]
    pending = None
    for line in text.split("MOTION")[0].splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] in ("ROOT", "JOINT"):
            pending = tok[1]
            names.append(pending)
        elif tok[0] == "End":
            pending = None
        elif tok[0] == "{":
            parent_head = stack[-1][2] if stack else np.zeros(3)
            stack.append([pending, parent_head, parent_head])
        elif tok[0] == "OFFSET":
            name, parent_head, _ = stack[-1]
            head = np.zeros(3) if len(stack) == 1 else parent_head + np.array([float(v) for v in tok[1:4]])
            stack[-1][2] = head
            if name is not None:
                heads[name] = head
        elif tok[0] == "}":
            stack.pop()
    return names, np.stack([heads[n] for n in names])


@pytest.mark.parametrize("rel", ["131_01.bvh", "01_01.bvh", "salsa/60_01_scaled_30fps.bvh", "fair1_dab.bvh"])
def test_zero_channels_fk_equals_summed_offsets(rel):
    candidates = [SUBJECT131 / rel, MORE / "cmu_bvh" / rel, MORE / "animated_drawings_bvh" / rel]
    path = next(p for p in candidates if p.exists())
    text = path.read_text()
    names, heads = _offsets_by_regex(text)
    b = read_bvh(path)
    assert b.names == names
    b.values = torch.zeros_like(b.values[:1])
    pos, rot = b.to_motion().forward_kinematics()
    np.testing.assert_allclose(pos[0].numpy(), heads, atol=1e-9)
    assert torch.allclose(rot, torch.eye(3, dtype=rot.dtype).expand_as(rot))


TINY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT a
  {
    OFFSET 1 0 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT b
    {
      OFFSET 2 0 0
      CHANNELS 3 Yrotation Xrotation Zrotation
      End Site
      {
        OFFSET 0 0 3
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
10 20 30 90 0 0 0 0 0 0 0 0
1 2 3 0 0 0 90 90 0 90 90 0
"""


def test_tiny_bvh_closed_form():
    b = parse_bvh(TINY, scale=2.0)
    assert b.names == ["root", "a", "b"] and b.parents == [-1, 0, 1]
    assert b.euler_orders == ["ZXY", "XYZ", "YXZ"]
    assert b.fps == 2.0
    np.testing.assert_allclose(b.end_offsets[2].numpy(), [0, 0, 6])
    assert math.isnan(float(b.end_offsets[0, 0]))
    m = b.to_motion()
    pos, rot = m.forward_kinematics()
    ends = pos[:, 2] + (rot[:, 2] @ m.end_offsets[2])
    # Frame 0: root at 2*(10,20,30), Rz(90): x -> y. a = root + Rz90 (2,0,0) = (20,42,60); b = a + Rz90 (4,0,0).
    np.testing.assert_allclose(pos[0].numpy(), [[20, 40, 60], [20, 42, 60], [20, 46, 60]], atol=1e-9)
    np.testing.assert_allclose(ends[0].numpy(), [20, 46, 66], atol=1e-9)
    # Frame 1: root (2,4,6), no root rotation. a: Rx(90) Ry(90) (XY order). b's offset (4,0,0) -> R_a (4,0,0):
    # Ry90 (4,0,0) = (0,0,-4); Rx90 (0,0,-4) = (0,4,0). b: Ry(90) Rx(90); end (0,0,6) -> Rx90 -> (0,-6,0)
    # -> Ry90 -> (0,-6,0); then R_a: Ry90 (0,-6,0) = (0,-6,0); Rx90 (0,-6,0) = (0,0,-6).
    np.testing.assert_allclose(pos[1].numpy(), [[2, 4, 6], [4, 4, 6], [4, 8, 6]], atol=1e-9)
    np.testing.assert_allclose(ends[1].numpy(), [4, 8, 0], atol=1e-9)


def test_units_subsampling_and_joint_translations():
    b1 = read_bvh(SUBJECT131 / "131_02.bvh")
    bm = read_bvh(SUBJECT131 / "131_02.bvh", scale=0.056444)
    m1, mm = b1.to_motion(), bm.to_motion()
    torch.testing.assert_close(mm.offsets, m1.offsets * 0.056444)
    torch.testing.assert_close(mm.root_positions, m1.root_positions * 0.056444)
    # 120 fps -> 30 fps keeps every 4th frame (Frame Time .0083333 is 120.0005 fps).
    s = mm.subsample(30)
    assert s.fps == pytest.approx(30.0, rel=1e-3) and s.num_frames == math.ceil(mm.num_frames / 4)
    torch.testing.assert_close(s.rotations[5], mm.rotations[20])
    # Bandai files carry position channels on every joint (equal to the offsets) and move the Hips through them.
    bb = read_bvh(next((MORE / "bandai_namco_ds1_CC-BY-NC-ND-4.0" / "data").glob("dataset-1_walk_normal_001.bvh")))
    mb = bb.to_motion()
    assert mb.translations is not None
    torch.testing.assert_close(mb.translations[:, 2], mb.offsets[2].expand(bb.num_frames, 3), atol=1e-3, rtol=0)
    pos, _ = mb.forward_kinematics()
    assert float((pos[-1, 1] - pos[0, 1]).norm()) > 100.0  # walked more than a metre (cm units)


def test_fk_rejects_children_before_parents():
    with pytest.raises(InvalidInputError, match="parents"):
        forward_kinematics([-1, 2, 0], torch.zeros(3, 3), torch.eye(3).expand(1, 3, 3, 3), torch.zeros(1, 3))


@pytest.mark.parametrize(
    "text, match",
    [
        ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Xrotation Yrotation Zrotation\n}\n", "MOTION"),
        (TINY.replace("Frames: 2", "Frames: 3"), "expected 3 frames"),
        (TINY.replace("10 20 30", "10 abc 30"), "non-numeric"),
        (TINY.replace("Xrotation Yrotation Zrotation", "Xrotation Wrotation Zrotation"), "bad CHANNELS"),
        (TINY.replace("Frame Time: 0.5", "Frame Time: 0"), "Frame Time"),
        (TINY.replace("  }\n}\nMOTION", "  }\nMOTION"), "unbalanced"),
        ("FOO\nMOTION\n", "HIERARCHY"),
    ],
)
def test_malformed_bvh_raises_dataset_error(text, match):
    with pytest.raises(DatasetError, match=match):
        parse_bvh(text)


def test_missing_or_wrong_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_bvh(tmp_path / "nope.bvh")
    (tmp_path / "x.txt").write_text(TINY)
    with pytest.raises(DatasetError, match=r"\.bvh"):
        read_bvh(tmp_path / "x.txt")
    (tmp_path / "bad.bvh").write_text(TINY[:200])
    with pytest.raises(DatasetError):
        read_bvh(tmp_path / "bad.bvh")


def test_regex_reader_is_independent():
    # Guard the oracle itself: the regex reader sees the same joint count as the channel-count regex.
    text = (SUBJECT131 / "131_01.bvh").read_text()
    names, heads = _offsets_by_regex(text)
    assert len(names) == len(re.findall(r"\b(?:ROOT|JOINT)\s", text)) == heads.shape[0] == 31
