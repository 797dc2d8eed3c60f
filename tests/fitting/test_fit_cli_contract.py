"""``human3d fit`` / ``human3d demo``'s fault and IO contract: output locations checked before any work (exit 2,
one line naming them), exit 2 with one line per skipped image when nothing could be fitted, and interrupt
safety: SIGINT leaves the finished images complete and listed in summary.json (exit 130), ``--resume`` fits only
the rest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from human3d.assets import example_photo
from human3d.cli.main import app
from human3d.fitting.pipeline import _Interrupts

runner = CliRunner()


def _one_line(r) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


@pytest.mark.parametrize("cmd", [["fit", "IMG"], ["demo"]])
def test_output_locations_are_checked_first(tmp_path, cmd):
    image, _ = example_photo()
    cmd = [str(image) if c == "IMG" else c for c in cmd]
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, why in ((afile, "is a file"), (afile / "sub", "is a file, not a folder"),
                     (Path("/proc/1/fit"), "no write permission")):  # fmt: skip
        t = time.perf_counter()
        r = runner.invoke(app, [*cmd, "--out", str(out)])
        assert r.exit_code == 2, r.output
        line = _one_line(r)
        assert "--out" in line and str(out) in line and why in line, line
        assert time.perf_counter() - t < 5  # no model built, nothing fitted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and afile.read_text() == "x"


def test_fit_exits_2_when_every_image_is_skipped(tmp_path):
    image, _ = example_photo()
    imgs, kps = tmp_path / "imgs", tmp_path / "kps"
    imgs.mkdir(), kps.mkdir()
    for n in ("a", "b"):
        shutil.copy(image, imgs / f"{n}.jpg")
    (kps / "a.json").write_text("{not json")
    (kps / "b.json").write_text(json.dumps({"version": 1.3, "people": []}))
    r = runner.invoke(app, ["fit", str(imgs), "-k", str(kps), "--out", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    a = [ln for ln in lines if ln.startswith("skipped image a:")]
    b = [ln for ln in lines if ln.startswith("skipped image b:")]
    assert len(a) == 1 and "a.json" in a[0] and "JSON" in a[0], r.output
    assert len(b) == 1 and "no people" in b[0], r.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["persons_fitted"] == 0 and [i["status"] for i in s["images"]] == ["skipped", "skipped"]


def test_interrupts_are_held_while_outputs_are_written():
    with _Interrupts() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.critical():
                os.kill(os.getpid(), signal.SIGTERM)  # held ...
                time.sleep(0.05)
                done = True  # ... so the block finishes
        assert done
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def _folder_of_three(tmp_path: Path) -> tuple[Path, Path]:
    image, kp = example_photo()
    coco = json.loads(kp.read_text())
    src_img, src_ann = coco["images"][0], [a for a in coco["annotations"]]
    folder = tmp_path / "photos"
    folder.mkdir()
    images, anns = [], []
    for i, n in enumerate(("a", "b", "c")):
        shutil.copy(image, folder / f"{n}.jpg")
        images.append({**src_img, "id": 100 + i, "file_name": f"{n}.jpg"})
        anns += [{**a, "id": 1000 + 10 * i + j, "image_id": 100 + i} for j, a in enumerate(src_ann)]
    kpf = tmp_path / "keypoints.json"
    kpf.write_text(json.dumps({**coco, "images": images, "annotations": anns}))
    return folder, kpf


def test_sigint_keeps_finished_images_and_resume_fits_the_rest(tmp_path):
    folder, kpf = _folder_of_three(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "human3d.cli.main", "fit", str(folder), "-k", str(kpf), "--out", str(out),
           "--chunk", "1", "--iters", "15", "--camera-iters", "10", "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    summary = out / "summary.json"
    t_end = time.time() + 300
    while time.time() < t_end and p.poll() is None:
        if summary.is_file() and json.loads(summary.read_text()).get("completed_images"):
            break
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[0]
    p.send_signal(signal.SIGINT)
    log = p.communicate(timeout=120)[0]
    assert p.returncode == 130, log
    assert "interrupted:" in log and "--resume" in log, log
    s = json.loads(summary.read_text())
    done = s["completed_images"]
    assert s["state"] == "interrupted" and 1 <= len(done) < 3, s
    mtimes = {}
    for rec in s["images"]:
        files = [f for person in rec["people"] for f in person.get("files", {}).values()]
        if rec["name"] in done:  # complete: parameters, mesh and overlays, all listed and present
            kinds = {k for person in rec["people"] for k in person["files"]}
            assert kinds == {"params_npz", "params_json", "mesh", "overlay"}, kinds
            assert rec["overlay"] and (out / rec["overlay"]).is_file()
            for f in files + [rec["overlay"]]:
                assert (out / f).is_file() and (out / f).stat().st_size > 0, f
                mtimes[f] = (out / f).stat().st_mtime_ns
        else:
            assert rec["status"] == "interrupted" and not files, rec

    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in done:
        assert f"resume: {name} was fitted by the previous run" in r.stderr, r.stderr
    s2 = json.loads(summary.read_text())
    assert s2["state"] == "done" and s2["completed_images"] == ["a", "b", "c"] and s2["persons_fitted"] == 3
    for f, m in mtimes.items():  # the finished image was not refitted
        assert (out / f).stat().st_mtime_ns == m, f
    for n in ("a", "b", "c"):
        assert (out / n / "person_00.obj").is_file() and (out / n / "overlay.png").is_file()


def test_resume_refuses_other_settings(tmp_path):
    """--resume into a folder fitted with other settings (prior, iterations, focal) is refused naming each setting
    (previous -> now), before any fitting; the same settings resume."""
    folder, kpf = _folder_of_three(tmp_path)
    out = tmp_path / "out"
    base = ["fit", str(folder / "a.jpg"), "-k", str(kpf), "--out", str(out), "--iters", "4", "--camera-iters", "4",
            "-q", "--prior", "simple"]  # fmt: skip
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["prior"] == "simple" and s["settings"]["body_iters"] == 4, s["settings"]
    mtime = (out / "summary.json").stat().st_mtime_ns
    changed = [a if a != "simple" else "none" for a in base] + ["--focal", "900", "--resume"]
    r = runner.invoke(app, changed)
    assert r.exit_code == 2, r.output
    line = _one_line(r)
    assert "--resume" in line and "prior 'simple' -> 'none'" in line and "focal_px None -> 900.0" in line, line
    assert (out / "summary.json").stat().st_mtime_ns == mtime  # nothing was refitted or rewritten
    r = runner.invoke(app, base + ["--resume"])
    assert r.exit_code == 0 and "was fitted by the previous run" in r.output, r.output


def test_resume_settings_check_reads_old_summaries():
    """Summaries written before settings were recorded are checked on the model family alone."""
    from human3d.errors import InvalidInputError
    from human3d.fitting.pipeline import check_resume_settings

    now = {"model": "anny", "prior": "simple", "focal_px": None}
    check_resume_settings({"model": "anny"}, now, Path("s.json"))  # same model: accepted
    with pytest.raises(InvalidInputError, match="model 'smpl' -> 'anny'"):
        check_resume_settings({"model": "smpl"}, now, Path("s.json"))
