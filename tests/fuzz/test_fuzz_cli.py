"""The bad-input contract of every ``human3d`` command (see ``cli_contract.py``): exit 2, one line on stderr naming
the offending file or option, no traceback, nothing half-written. One table row per bad input; a new command
adds its rows here (``test_every_command_has_cases`` fails until it does)."""

from __future__ import annotations

import json

import pytest
from cli_contract import Case, check_bad_input, invoke, leaf_commands

pytestmark = pytest.mark.fuzz

TRAIN = ["--steps", "2", "--no-progress"]


def _scene_train(cmd: str) -> list[Case]:
    """The bad inputs of a scene trainer's ``train`` (nerf, splat): datasets and options."""

    def bad_blender(edit):
        def args(d, out):
            import shutil

            root = out / "data"
            shutil.copytree(d / "blender", root)
            edit(root)
            return [cmd, "train", root, "--out", out / "run", *TRAIN]

        return args

    def tf(change):
        def edit(root):
            meta = json.loads((root / "transforms_train.json").read_text())
            change(meta)
            (root / "transforms_train.json").write_text(json.dumps(meta))

        return edit

    def frame0(key, value):
        return tf(lambda m: m["frames"][0].__setitem__(key, value))

    run = lambda d, out: [out / "run"]  # noqa: E731
    cut = lambda root: (root / "train" / "r_1.png").write_bytes((root / "train" / "r_1.png").read_bytes()[:200])  # noqa: E731
    rows = [
        ("empty folder", lambda d, out: [cmd, "train", out, "--out", out / "run", *TRAIN], lambda d, out: [str(out)]),
        ("transforms not JSON", bad_blender(lambda r: (r / "transforms_train.json").write_text('{"frames": [')),
         lambda d, out: ["transforms_train.json", "JSON"]),
        ("transforms a list", bad_blender(lambda r: (r / "transforms_train.json").write_text("[]")),
         lambda d, out: ["transforms_train.json", "'frames' list"]),
        ("NaN pose", bad_blender(frame0("transform_matrix", [[float("nan")] * 4] * 4)),
         lambda d, out: ["frame 0", "non-finite"]),
        ("Infinity angle", bad_blender(tf(lambda m: m.__setitem__("camera_angle_x", float("inf")))),
         lambda d, out: ["camera_angle_x", "finite number"]),
        ("string focal", bad_blender(tf(lambda m: m.__setitem__("fl_x", "wide"))), lambda d, out: ["'fl_x'", "'wide'"]),
        ("negative angle", bad_blender(tf(lambda m: m.__setitem__("camera_angle_x", -1.0))),
         lambda d, out: ["camera_angle_x", "(0, pi)"]),
        ("3x3 pose", bad_blender(frame0("transform_matrix", [[1, 0, 0], [0, 1, 0], [0, 0, 1]])),
         lambda d, out: ["frame 0", "shape (3, 3)"]),
        ("string pose", bad_blender(frame0("transform_matrix", "identity")), lambda d, out: ["frame 0"]),
        ("frame w without h", bad_blender(frame0("w", 16)), lambda d, out: ["frame 0", "'w' and 'h'"]),
        ("missing image", bad_blender(lambda r: (r / "train" / "r_2.png").unlink()), lambda d, out: ["missing", "r_2.png"]),
        ("empty image", bad_blender(lambda r: (r / "train" / "r_1.png").write_bytes(b"")),
         lambda d, out: ["r_1.png", "empty file"]),
        ("text as image", bad_blender(lambda r: (r / "train" / "r_1.png").write_text("not a png")),
         lambda d, out: ["r_1.png", "not an image"]),
        ("truncated image", bad_blender(cut), lambda d, out: ["r_1.png", "truncated PNG"]),
        ("other aspect ratio", bad_blender(lambda r: __import__("cv2").imwrite(str(r / "train" / "r_0.png"),
                                                                               __import__("numpy").zeros((8, 16, 3)))),
         lambda d, out: ["train/r_0.png' 16x8", "aspect ratio"]),
    ]
    cases = [Case(f"{cmd} train", i, a, n, run) for i, a, n in rows]

    def colmap(edit):
        def args(d, out):
            import shutil

            root = out / "data"
            shutil.copytree(d / "colmap", root)
            edit(root / "sparse" / "0")
            return [cmd, "train", root, "--out", out / "run", *TRAIN]

        return args

    def cut_file(name, keep):
        return lambda s: (s / name).write_bytes((s / name).read_bytes()[:keep])

    def cam_bytes(offset, data, name="cameras.bin"):
        def edit(s):
            b = bytearray((s / name).read_bytes())
            b[offset:offset + len(data)] = data
            (s / name).write_bytes(bytes(b))

        return edit

    import struct

    cases += [
        Case(f"{cmd} train", "COLMAP images.bin truncated", colmap(cut_file("images.bin", 40)),
             lambda d, out: ["images.bin", "truncated"], run),
        Case(f"{cmd} train", "COLMAP cameras.bin empty", colmap(cut_file("cameras.bin", 0)),
             lambda d, out: ["cameras.bin"], run),
        Case(f"{cmd} train", "COLMAP unknown camera model", colmap(cam_bytes(12, struct.pack("<i", 99))),
             lambda d, out: ["cameras.bin", "99"], run),
        Case(f"{cmd} train", "COLMAP NaN focal", colmap(cam_bytes(32, struct.pack("<d", float("nan")))),
             lambda d, out: ["camera 1", "finite"], run),
        Case(f"{cmd} train", "COLMAP huge camera count", colmap(cam_bytes(0, struct.pack("<Q", 2**40))),
             lambda d, out: ["cameras.bin"], run),
        Case(f"{cmd} train", "COLMAP huge point count", colmap(cam_bytes(0, struct.pack("<Q", 2**56), "points3D.bin")),
             lambda d, out: ["points3D.bin", f"says {2**56} points"], run),
        Case(f"{cmd} train", "--steps 0", lambda d, out: [cmd, "train", d / "blender", "--out", out / "run", "--steps", "0"],
             lambda d, out: ["--steps"], run, kind="usage"),
        Case(f"{cmd} train", "--downscale nan", lambda d, out: [cmd, "train", d / "blender", "--out", out / "run",
                                                               "--downscale", "nan"], lambda d, out: ["--downscale"], run,
             kind="usage"),
        Case(f"{cmd} train", "--minutes -1", lambda d, out: [cmd, "train", d / "blender", "--out", out / "run",
                                                            "--minutes", "-1"], lambda d, out: ["--minutes"], run,
             kind="usage"),
        Case(f"{cmd} train", "--set NaN steps", lambda d, out: [cmd, "train", d / "blender", "--out", out / "run",
                                                               "--set", "run.max_steps=NaN"],
             lambda d, out: ["max_steps", "nan"], run),
        Case(f"{cmd} train", "--set unknown field", lambda d, out: [cmd, "train", d / "blender", "--out", out / "run",
                                                                   "--set", "model.nope=1"], lambda d, out: ["model.nope"],
             run),
        Case(f"{cmd} train", "--out is a file", lambda d, out: [cmd, "train", d / "blender", "--out", d / "a_file", *TRAIN],
             lambda d, out: ["a_file"], lambda d, out: []),
        Case(f"{cmd} render", "not a run folder", lambda d, out: [cmd, "render", d / "blender"],
             lambda d, out: ["blender"], lambda d, out: []),
        Case(f"{cmd} render", "--video without --orbit", lambda d, out: [cmd, "render", d / "blender", "--video", out / "v.mp4"],
             lambda d, out: ["--video"], lambda d, out: [out / "v.mp4"]),
        Case(f"{cmd} eval", "missing run", lambda d, out: [cmd, "eval", out / "nope"], lambda d, out: ["nope"],
             lambda d, out: [out / "nope"]),
    ]
    return cases


def _fit_cases() -> list[Case]:
    res = lambda d, out: [out / "fit"]  # noqa: E731
    fit = lambda *a: (lambda d, out: ["fit", *[x(d) if callable(x) else x for x in a], "-q", "--out", out / "fit"])  # noqa: E731
    f = lambda name: (lambda d: d / name)  # noqa: E731
    return [
        Case("fit", "empty image", fit(f("empty.jpg")), lambda d, out: ["empty.jpg", "empty file"], res, kind="skipped"),
        Case("fit", "text file as image", fit(f("text.jpg")), lambda d, out: ["text.jpg", "not an image"], res,
             kind="skipped"),
        Case("fit", "truncated image", fit(f("cut.jpg"), "-k", f("kp_outside.json")),
             lambda d, out: ["cut.jpg': truncated, decoded partially"], res,
             kind="skipped"),
        Case("fit", "keypoints a list of numbers", fit(f("photo.jpg"), "-k", f("kp_list.json")),
             lambda d, out: ["kp_list.json", "found a int (1)"], res,),
        Case("fit", "keypoints strings", fit(f("photo.jpg"), "-k", f("kp_strings.json")),
             lambda d, out: ["kp_strings.json", "found a str ('1') at position 0"], res,),
        Case("fit", "keypoints not JSON", fit(f("photo.jpg"), "-k", f("kp_bad.json")),
             lambda d, out: ["kp_bad.json", "not valid JSON"], res,),
        Case("fit", "COCO ids match no image", fit(f("photo.jpg"), "-k", f("kp_coco_other.json")),
             lambda d, out: ["kp_coco_other.json", "photo.jpg", "image_id 7, 9"], res,),
        Case("fit", "keypoints outside the image", fit(f("photo.jpg"), "-k", f("kp_outside.json")),
             lambda d, out: ["photo", "25 keypoint(s) with confidence up to 1 lie outside the 64x48 image"], res,
             kind="skipped"),
        Case("fit", "missing image", fit(lambda d: d / "nope.jpg"), lambda d, out: ["nope.jpg", "does not exist"], res,),
        Case("fit", "--focal negative", fit(f("photo.jpg"), "--focal", "-5"), lambda d, out: ["--focal", "-5"], res),
        Case("fit", "--focal NaN", fit(f("photo.jpg"), "--focal", "nan"), lambda d, out: ["--focal", "nan"], res),
        Case("fit", "--out is a file", lambda d, out: ["fit", d / "photo.jpg", "-q", "--out", d / "a_file"],
             lambda d, out: ["a_file"], lambda d, out: []),
        Case("fit", "--out under a file", lambda d, out: ["fit", d / "photo.jpg", "-q", "--out", d / "a_file" / "sub"],
             lambda d, out: ["a_file"], lambda d, out: []),
        Case("fit", "--iters -1", fit(f("photo.jpg"), "--iters", "-1"), lambda d, out: ["--iters"], res, kind="usage"),
    ]


def _other_cases() -> list[Case]:
    none = lambda d, out: []  # noqa: E731
    mesh = lambda d, out: [out / "b.obj"]  # noqa: E731
    return [
        Case("demo", "--out is a file", lambda d, out: ["demo", "-q", "--out", d / "a_file"], lambda d, out: ["a_file"], none),
        Case("body export", "random-bytes npz", lambda d, out: ["body", "export", "--out", out / "b.obj", "--params",
                                                               d / "params_bytes.npz"],
             lambda d, out: ["params_bytes.npz", "not a valid .npz"], mesh),
        Case("body export", "JSON list params", lambda d, out: ["body", "export", "--out", out / "b.obj", "--params",
                                                               d / "params_list.json"],
             lambda d, out: ["params_list.json", "JSON object", "list"], mesh),
        Case("body export", "pickle params", lambda d, out: ["body", "export", "--out", out / "b.obj", "--params",
                                                            d / "params.pkl"], lambda d, out: ["params.pkl", ".npz"], mesh),
        Case("body export", "NaN params", lambda d, out: ["body", "export", "--out", out / "b.obj", "--params",
                                                         d / "params_nan.json"], lambda d, out: ["params_nan.json", "NaN"],
             mesh),
        Case("body export", "--index out of range", lambda d, out: ["body", "export", "--out", out / "b.obj", "--params",
                                                                   d / "params.json", "--index", "3"],
             lambda d, out: ["--index"], mesh),
        Case("body export", "bad mesh suffix", lambda d, out: ["body", "export", "--out", out / "b.xyz"],
             lambda d, out: ["b.xyz", ".obj"], lambda d, out: [out / "b.xyz"]),
        Case("body export", "--out under a file", lambda d, out: ["body", "export", "--out", d / "a_file" / "b.obj"],
             lambda d, out: ["a_file"], none),
        Case("body info", "SMPL without a model file", lambda d, out: ["body", "info", "--model", "smpl", "--model-path",
                                                                      out / "nope"], lambda d, out: ["nope"], none),
        Case("synth make", "--n 0", lambda d, out: ["synth", "make", "--out", out / "s", "--n", "0", "-q"],
             lambda d, out: ["n:", "got 0"], lambda d, out: [out / "s"]),
        Case("synth make", "--size 0", lambda d, out: ["synth", "make", "--out", out / "s", "--n", "1", "--size", "0", "-q"],
             lambda d, out: ["size", "got 0"], lambda d, out: [out / "s"]),
        Case("synth make", "--prior-fraction NaN", lambda d, out: ["synth", "make", "--out", out / "s", "--n", "1",
                                                                  "--prior-fraction", "nan", "-q"],
             lambda d, out: ["prior_fraction", "nan"], lambda d, out: [out / "s"]),
        Case("synth make", "--batch -1", lambda d, out: ["synth", "make", "--out", out / "s", "--n", "1", "--batch", "-1",
                                                        "-q"], lambda d, out: ["batch", "-1"], lambda d, out: [out / "s"]),
        Case("synth make", "--out is a file", lambda d, out: ["synth", "make", "--out", d / "a_file", "--n", "1", "-q"],
             lambda d, out: ["a_file"], none),
        Case("implicit fit", "NaN in .xyz", lambda d, out: ["implicit", "fit", d / "cloud_nan.xyz", "--out", out / "run", *TRAIN],
             lambda d, out: ["cloud_nan.xyz", "NaN"], lambda d, out: [out / "run"]),
        Case("implicit fit", "empty .xyz", lambda d, out: ["implicit", "fit", d / "cloud_empty.xyz", "--out", out / "run", *TRAIN],
             lambda d, out: ["cloud_empty.xyz"], lambda d, out: [out / "run"]),
        Case("implicit fit", "truncated PLY", lambda d, out: ["implicit", "fit", d / "cloud_cut.ply", "--out", out / "run", *TRAIN],
             lambda d, out: ["cloud_cut.ply", "truncated"], lambda d, out: [out / "run"]),
        Case("implicit fit", "NaN PLY", lambda d, out: ["implicit", "fit", d / "cloud_nan.ply", "--out", out / "run", *TRAIN],
             lambda d, out: ["cloud_nan.ply", "NaN"], lambda d, out: [out / "run"]),
        Case("implicit fit", "missing input", lambda d, out: ["implicit", "fit", out / "nope.ply", "--out", out / "run", *TRAIN],
             lambda d, out: ["nope.ply"], lambda d, out: [out / "run"]),
        Case("implicit fit", "--steps 0", lambda d, out: ["implicit", "fit", d / "cloud.xyz", "--out", out / "run",
                                                         "--steps", "0"], lambda d, out: ["--steps"],
             lambda d, out: [out / "run"], kind="usage"),
        Case("implicit mesh", "not a run folder", lambda d, out: ["implicit", "mesh", d / "a_file", "--out", out / "m.obj"],
             lambda d, out: ["a_file"], lambda d, out: [out / "m.obj"]),
        Case("implicit eval", "missing run", lambda d, out: ["implicit", "eval", out / "nope", "--reference", d / "cloud.xyz"],
             lambda d, out: ["nope"], none),
        Case("pose2d train", "--data not COCO", lambda d, out: ["pose2d", "train", "--out", out / "run", "--data",
                                                               d / "a_file", *TRAIN], lambda d, out: ["a_file"],
             lambda d, out: [out / "run"]),
        Case("pose2d train", "--out is a file", lambda d, out: ["pose2d", "train", "--out", d / "a_file", *TRAIN],
             lambda d, out: ["a_file"], none),
        Case("pose2d eval", "missing run", lambda d, out: ["pose2d", "eval", out / "nope"], lambda d, out: ["nope"], none),
        Case("detect", "text file as image", lambda d, out: ["detect", d / "text.jpg", "--out", out / "k.json", "--no-overlay"],
             lambda d, out: ["text.jpg", "not an image"], lambda d, out: [out / "k.json"]),
        Case("detect", "empty image", lambda d, out: ["detect", d / "empty.jpg", "--out", out / "k.json", "--no-overlay"],
             lambda d, out: ["empty.jpg", "empty file"], lambda d, out: [out / "k.json"]),
        Case("detect", "bad --out suffix", lambda d, out: ["detect", d / "photo.jpg", "--out", out / "k.txt"],
             lambda d, out: ["--out", ".json"], lambda d, out: [out / "k.txt"]),
        Case("detect", "--max-people 0", lambda d, out: ["detect", d / "photo.jpg", "--out", out / "k.json",
                                                        "--max-people", "0"], lambda d, out: ["--max-people"],
             lambda d, out: [out / "k.json"], kind="usage"),
        Case("splat export", "bad --ply suffix", lambda d, out: ["splat", "export", d / "blender", "--ply", out / "g.obj"],
             lambda d, out: ["--ply", ".ply"], lambda d, out: [out / "g.obj"]),
        Case("nerf mesh", "bad --out suffix", lambda d, out: ["nerf", "mesh", d / "blender", "--out", out / "m.xyz"],
             lambda d, out: ["--out", ".ply"], lambda d, out: [out / "m.xyz"]),
        Case("scene from-photos", "not a folder of photos", lambda d, out: ["scene", "from-photos", d / "a_file", "--out",
                                                                           out / "s", "--no-progress"],
             lambda d, out: ["a_file"], lambda d, out: [out / "s"]),
        Case("scene export-cameras", "not a run or scene", lambda d, out: ["scene", "export-cameras", d / "a_file", "--out",
                                                                          out / "t.json"], lambda d, out: ["a_file"],
             lambda d, out: [out / "t.json"]),
    ]


def _newer_cases() -> list[Case]:
    """Commands added while this suite was written (hmr, dvr, DeepSDF): their file and folder arguments."""
    none = lambda d, out: []  # noqa: E731
    return [
        Case("hmr predict", "--weights not safetensors", lambda d, out: ["hmr", "predict", d / "photo.jpg", "--weights",
                                                                        d / "a_file", "--out", out / "p"],
             lambda d, out: ["a_file"], lambda d, out: [out / "p"]),
        Case("hmr train", "--out is a file", lambda d, out: ["hmr", "train", "--out", d / "a_file", *TRAIN],
             lambda d, out: ["a_file"], none),
        Case("implicit train-shapes", "--out is a file", lambda d, out: ["implicit", "train-shapes", "--out", d / "a_file",
                                                                        *TRAIN], lambda d, out: ["a_file"], none),
        Case("implicit train-shapes", "bad --method", lambda d, out: ["implicit", "train-shapes", "--method", "ifnet",
                                                                     "--out", out / "r", *TRAIN],
             lambda d, out: ["--method", "ifnet"], lambda d, out: [out / "r"]),
        Case("implicit train-shapes", "--method occnet, missing folder", lambda d, out: [
            "implicit", "train-shapes", out / "nowhere", "--method", "occnet", "--out", out / "r", *TRAIN],
             lambda d, out: ["nowhere"], none),
        Case("implicit complete", "missing run", lambda d, out: ["implicit", "complete", out / "nope", d / "cloud.xyz",
                                                                "--out", out / "c.obj"], lambda d, out: ["nope"],
             lambda d, out: [out / "c.obj"]),
        Case("implicit sample", "missing run", lambda d, out: ["implicit", "sample", out / "nope", "--out", out / "s"],
             lambda d, out: ["nope"], lambda d, out: [out / "s"]),
        Case("dvr render", "not a run folder", lambda d, out: ["dvr", "render", d / "blender"], lambda d, out: ["blender"],
             none),
        Case("dvr eval", "missing run", lambda d, out: ["dvr", "eval", out / "nope"], lambda d, out: ["nope"], none),
        Case("dvr mesh", "not a run folder", lambda d, out: ["dvr", "mesh", d / "blender", "--out", out / "m.obj"],
             lambda d, out: ["blender"], lambda d, out: [out / "m.obj"]),
        Case("dvr make-renders", "missing mesh", lambda d, out: ["dvr", "make-renders", out / "nope.obj", "--out", out / "r"],
             lambda d, out: ["nope.obj"], lambda d, out: [out / "r"]),
    ]


SPLAT_SMALL = Case(
    "splat train", "images too small for SSIM at the coarse resolution",
    lambda d, out: ["splat", "train", d / "blender", "--out", out / "run", *TRAIN], lambda d, out: ["blender", "16x16"],
    lambda d, out: [out / "run"],
)  # fmt: skip

CASES = ([SPLAT_SMALL] + _scene_train("nerf") + _scene_train("splat") + _scene_train("dvr") + _fit_cases() + _other_cases()
         + _newer_cases())


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c.command}: {c.id}", marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail
                          else []) for c in CASES],
)
def test_bad_input_exits_2_with_one_line_naming_it(case, fz, tmp_path, one_thread):
    out = tmp_path / "out"
    out.mkdir()
    args = case.args(fz, out)
    check_bad_input(invoke(args), case.names(fz, out), case.outputs(fz, out), case.kind)


def test_every_command_has_cases():
    covered = {c.command for c in CASES}
    missing = [c for c in leaf_commands() if c not in covered]
    assert not missing, f"commands without bad-input cases in tests/fuzz/test_fuzz_cli.py: {missing}"
