"""Generated bad inputs to the readers behind the commands (hypothesis): keypoint JSON (OpenPose, COCO), Blender
transforms.json, COLMAP binaries, body parameter files and PLY point clouds. A reader either returns clean data
(finite keypoints with confidences in [0, 1], finite cameras, finite points) or raises the project's one-line
input error naming the file; never another exception. Valid documents are mutated at a random node (replaced by
any JSON value, NaN and Infinity included, or deleted); binaries are cut or overwritten at random offsets."""

from __future__ import annotations

import copy
import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_inputs import openpose_doc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from human3d.errors import Human3DError

pytestmark = pytest.mark.fuzz
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])  # fmt: skip

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=4), st.just(float("nan")), st.just(-1), st.just(0))  # fmt: skip
VALUE = st.recursive(LEAF, lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=4), ch, max_size=3),
                     max_leaves=6)  # fmt: skip


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, path + (i,))


@st.composite
def mutated(draw, doc):
    """``doc`` with a few nodes replaced by random JSON values or deleted."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(doc))
        path = nodes[draw(st.integers(0, len(nodes) - 1))]
        value = draw(VALUE)
        if not path:
            doc = value
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


def _coco_doc() -> dict:
    return {"images": [{"id": 1, "file_name": "photo.jpg", "width": 64, "height": 48}],
            "annotations": [{"id": 5, "image_id": 1, "iscrowd": 0, "bbox": [1, 2, 30, 40],
                             "keypoints": [10, 12, 2] * 17, "num_keypoints": 17}]}  # fmt: skip


def _expect_input_error(fn, *names):
    """Run ``fn``: its result, or None when it raised a one-line Human3DError naming each of ``names``."""
    try:
        return fn()
    except Human3DError as e:
        msg = str(e)
        assert "\n" not in msg.strip() and all(str(n) in msg for n in names), msg
        return None


@pytest.mark.parametrize("kind", ["openpose", "coco"])
def test_keypoint_json(kind, fz):
    from human3d.data.keypoints import load_keypoint_inputs

    base = openpose_doc() if kind == "openpose" else _coco_doc()

    @FUZZ
    @given(doc=mutated(base))
    def run(doc):
        with tempfile.TemporaryDirectory() as t:
            kp = Path(t) / "k.json"
            kp.write_text(json.dumps(doc))  # NaN / Infinity written as JSON5-style tokens, as some tools do
            items = _expect_input_error(lambda: load_keypoint_inputs(fz / "photo.jpg", kp), "k.json")
            for item in items or []:
                assert item.error is None or "k.json" in item.error or "photo.jpg" in item.error, item.error
                for p in item.people:
                    k = p.keypoints
                    assert k.dtype == np.float32 and np.isfinite(k).all() and ((k[:, 2] >= 0) & (k[:, 2] <= 1)).all()

    run()


def test_transforms_json(fz):
    from human3d.data.scenes import load_blender_scene

    base = json.loads((fz / "blender" / "transforms_train.json").read_text())

    @FUZZ
    @given(doc=mutated(base))
    def run(doc):
        with tempfile.TemporaryDirectory() as t:
            root = Path(t) / "scene"
            shutil.copytree(fz / "blender", root)
            (root / "transforms_train.json").write_text(json.dumps(doc))
            scene = _expect_input_error(lambda: load_blender_scene(root, "train"))
            if scene is not None:
                assert all(bool(v.isfinite().all()) for v in (scene.cameras.K, scene.cameras.world_to_camera))
                assert bool(scene.images.isfinite().all()) and len(scene) >= 1

    run()


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_colmap_binaries(name, fz):
    from human3d.data.scenes import load_colmap_scene

    data = (fz / "colmap" / "sparse" / "0" / name).read_bytes()

    @FUZZ
    @given(cut=st.integers(0, len(data)), at=st.integers(0, max(0, len(data) - 1)),
           junk=st.one_of(st.binary(min_size=1, max_size=8),
                          st.sampled_from([struct.pack("<d", float("nan")), struct.pack("<Q", 2**40),
                                           struct.pack("<i", -1), struct.pack("<d", -1e300)])))  # fmt: skip
    def run(cut, at, junk):
        b = bytearray(data)
        b[at:at + len(junk)] = junk
        b = bytes(b[: max(cut, at + len(junk))]) if cut < len(data) else bytes(b)
        with tempfile.TemporaryDirectory() as t:
            root = Path(t) / "scene"
            shutil.copytree(fz / "colmap", root)
            (root / "sparse" / "0" / name).write_bytes(b)
            scene = _expect_input_error(lambda: load_colmap_scene(root, "all"))
            if scene is not None:
                assert all(bool(v.isfinite().all()) for v in (scene.cameras.K, scene.cameras.world_to_camera))
                assert scene.near > 0 and scene.far > scene.near

    run()


def test_body_parameter_files(fz, anny_model):
    from human3d.body.io import load_params

    base = json.loads((fz / "params.json").read_text())
    shapes = {k: np.asarray(v).shape for k, v in base["params"].items()}
    arrays = st.sampled_from(sorted(shapes)).flatmap(lambda k: st.tuples(st.just(k), st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=8),
        st.just(np.full(shapes[k], np.inf).tolist()), st.just(np.zeros((2,) + shapes[k][1:]).tolist()),
        st.just(np.zeros(shapes[k][:-1] + (shapes[k][-1] + 1,)).tolist()), VALUE)))  # fmt: skip

    @FUZZ
    @given(change=arrays, doc=mutated(base), which=st.booleans())
    def run(change, doc, which):
        if which:  # a tensor of the wrong shape / values in an otherwise valid file
            doc = copy.deepcopy(base)
            doc["params"][change[0]] = change[1]
        with tempfile.TemporaryDirectory() as t:
            path = Path(t) / "p.json"
            path.write_text(json.dumps(doc))
            out = _expect_input_error(lambda: load_params(path, model=anny_model), "p.json")
            if out is not None:
                assert all(bool(v.isfinite().all()) for v in out.params.values())

    run()


def test_ply_point_clouds():
    from human3d.implicit.io import read_points

    header = ["ply", "format ascii 1.0", "element vertex 4", "property float x", "property float y",
              "property float z", "end_header"]  # fmt: skip
    rows = ["0 0 0", "1 0 0", "0 1 0", "0 0 1"]
    line = st.one_of(st.sampled_from(["nan 0 0", "inf 1 1", "1 2", "1 2 3 4", "a b c", "", "element face 1",
                                      "property list uchar int vertex_indices", "3 0 1 2", "end_header",
                                      "format binary_little_endian 1.0", "element vertex -1",
                                      "element vertex 99999999"]),
                     st.text(alphabet="0123456789 .-eE\n", max_size=12))  # fmt: skip

    @FUZZ
    @given(at=st.integers(0, len(header) + len(rows)), new=line, cut=st.integers(1, len(header) + len(rows) + 1),
           binary=st.binary(max_size=16))  # fmt: skip
    def run(at, new, cut, binary):
        lines = header + rows
        lines[min(at, len(lines) - 1)] = new
        with tempfile.TemporaryDirectory() as t:
            path = Path(t) / "c.ply"
            path.write_bytes(("\n".join(lines[:cut]) + "\n").encode() + binary)
            out = _expect_input_error(lambda: read_points(path))
            if out is not None:
                pts, normals = out
                assert np.isfinite(pts).all() and pts.ndim == 2 and pts.shape[1] == 3 and len(pts) > 0

    run()


def test_body_parameter_npz_tensors(fz, anny_model):
    """Tensors of any dtype, shape and value (NaN, Infinity, huge) in a save_params ``.npz``."""
    from hypothesis.extra import numpy as hnp

    from human3d.body.io import _META_KEY, load_params

    base = json.loads((fz / "params.json").read_text())
    meta = {k: v for k, v in base.items() if k != "params"}
    names = sorted(base["params"]) + ["not_a_parameter"]
    dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64, "U3"])
    tensor = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))

    @FUZZ
    @given(name=st.sampled_from(names), value=tensor, keep_others=st.booleans())
    def run(name, value, keep_others):
        arrays = {k: np.asarray(v, np.float32) for k, v in base["params"].items()} if keep_others else {}
        arrays[name] = value
        with tempfile.TemporaryDirectory() as t:
            path = Path(t) / "p.npz"
            np.savez(path, **{_META_KEY: np.array(json.dumps(meta))}, **arrays)
            out = _expect_input_error(lambda: load_params(path, model=anny_model), "p.npz")
            if out is not None:
                assert all(bool(v.isfinite().all()) for v in out.params.values())

    run()


def test_complex_parameters_are_refused(fz, anny_model, tmp_path):
    from human3d.body.io import _META_KEY, load_params

    base = json.loads((fz / "params.json").read_text())
    meta = {k: v for k, v in base.items() if k != "params"}
    np.savez(tmp_path / "p.npz", **{_META_KEY: np.array(json.dumps(meta))}, 
             body_pose=np.asarray(base["params"]["body_pose"], np.complex64) + 1j)
    with pytest.raises(Human3DError, match=r"p\.npz: parameter 'body_pose' holds complex numbers \(complex64\)"):
        load_params(tmp_path / "p.npz", model=anny_model)
