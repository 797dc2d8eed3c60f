"""The SPIN-style training mode (human3d.hmr.spin): the keep-only-if-lower rule against a sequential reference, the
fit table against independent SMPLify calls, the 2D-only images' 3D labels never read, the table across a kill and a
resume, and the config through ``--set``."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file, save_file

from human3d.errors import InvalidInputError
from human3d.hmr.spin import LABELS_2D, SpinHMRTrainer, keep_lower, spin_preset, two_d_only_mask

TINY = {"spin.fraction_2d": 0.5, "spin.max_fits": 3, "spin.fit.body_iters": 5, "run.threads": 1}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, anny_model):
    """The tiny preset's training set (16 images of 64 px, training clips), rendered once for the module."""
    from human3d.fitting.lgd import training_clips
    from human3d.hmr.trainer import render_training_set

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = render_training_set(anny_model, 16, 64, seed=0, clips=training_clips(), progress=False)
    finally:
        torch.set_num_threads(n)
    path = tmp_path_factory.mktemp("spin") / "train_set.safetensors"
    save_file(s, str(path))
    return path


def _trainer(run, tiny_set, set_file=None, **over):
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "train_set.safetensors").is_file():
        shutil.copy(set_file or tiny_set, run / "train_set.safetensors")
    return SpinHMRTrainer(run, config=spin_preset("tiny"), overrides={**TINY, **over})


def _sequential(table, rows, new):
    """Brute-force reference: apply the fits one after the other, each replacing its entry only when lower."""
    t = table.clone()
    won = [None] * len(rows)  # the fit currently holding each entry
    holder = {}
    for i, (r, e) in enumerate(zip(rows.tolist(), new.tolist())):
        if e == e and e < float(t[r]):  # not NaN, strictly lower
            t[r] = e
            if r in holder:
                won[holder[r]] = False
            holder[r] = i
            won[i] = True
        else:
            won[i] = False
    return torch.tensor(won), t


@pytest.mark.parametrize("seed", range(5))
def test_keep_lower_matches_the_sequential_rule(seed):
    g = torch.Generator().manual_seed(seed)
    R, n = 7, 40
    table = torch.randint(0, 6, (R,), generator=g).float()
    table[torch.rand(R, generator=g) < 0.3] = float("inf")  # empty entries
    rows = torch.randint(0, R, (n,), generator=g)  # many duplicates
    new = torch.randint(0, 8, (n,), generator=g).float()  # integers: ties
    new[torch.rand(n, generator=g) < 0.15] = float("nan")  # failed fits
    win = keep_lower(table, rows, new)
    ref_win, ref_table = _sequential(table, rows, new)
    assert torch.equal(win, ref_win)
    out = table.clone()
    out[rows[win]] = new[win]
    assert torch.equal(out, ref_table)
    assert len(set(rows[win].tolist())) == int(win.sum())  # at most one writer per entry


def test_table_only_improves_and_holds_independent_fits(tmp_path, tiny_set, anny_model, one_thread):
    from human3d.fitting import smplify
    from human3d.fitting.losses import keypoint_scale, reprojection_energy
    from human3d.geometry.cameras import project_points

    tr = _trainer(tmp_path / "run", tiny_set)
    tab = tr.table()
    assert tab["energy"].shape == (8,) and torch.isinf(tab["energy"]).all()
    replaced = 0
    for _ in range(4):
        before = {k: v.clone() for k, v in tab.items()}
        info = tr.train_step()
        tr.step += 1
        assert (tab["energy"] <= before["energy"]).all()  # never increases
        if "spin_fitted" not in info:  # no 2D-only image drawn this step
            assert torch.equal(tab["energy"], before["energy"])
            continue
        assert 0.0 <= info["spin_updated"] <= 1.0
        lf = tr.last_fits
        win = lf["replaced"]
        rows = tr.rows[lf["index"]]
        changed = tab["energy"] != before["energy"]
        assert set(changed.nonzero().flatten().tolist()) == set(rows[win].tolist())
        if bool(win.any()):  # an independent SMPLify call from the same start gives the entries
            f = tr.config.spin.fit
            r = smplify(anny_model, lf["keypoints"], lf["K"], prior=f.prior, init=lf["init"], default_hypothesis=False,
                        retry_hypotheses=(), body_iters=f.body_iters, robust_sigma=f.robust_sigma,
                        image_size=lf["image_size"])  # fmt: skip
            for k in lf["init"]:
                assert torch.allclose(tab[f"params.{k}"][rows[win]], r.params[k][win].float(), atol=1e-5), k
            # the entry's energy: SMPLify's robust data term of the full model's keypoints
            kp = lf["keypoints"]
            proj = project_points(anny_model(r.params).keypoints["coco17"], lf["K"])
            e = reprojection_energy(proj.uv, proj.valid, kp, keypoint_scale(kp), f.robust_sigma)
            assert torch.allclose(tab["energy"][rows[win]], e[win].float(), rtol=1e-4, atol=1e-6)
            replaced += int(win.sum())
    assert replaced > 0
    assert torch.isfinite(tab["energy"]).any()


def _poisoned(src, dst, value, seed):
    s = load_file(str(src))
    mask = two_d_only_mask(s["images"].shape[0], TINY["spin.fraction_2d"], seed)
    g = torch.Generator().manual_seed(99)
    for k, v in s.items():
        if k not in LABELS_2D:
            v = v.clone()
            v[mask] = value if value is not None else 1e3 * torch.randn(v[mask].shape, generator=g)
            s[k] = v
    save_file(s, str(dst))
    return dst


def test_labels_of_2d_only_images_are_never_read(tmp_path, tiny_set, one_thread):
    """Their 3D labels set to NaN, or to garbage: training stays finite and the weights come out bit-identical."""
    nets, tables = [], []
    for name, value in (("nan", float("nan")), ("garbage", None)):
        f = _poisoned(tiny_set, tmp_path / f"{name}.safetensors", value, seed=0)
        tr = _trainer(tmp_path / name, tiny_set, set_file=f)
        last = tr.train(progress=False)
        assert all(torch.isfinite(torch.tensor(float(last[k]))) for k in ("loss", "mpjpe_mm", "spin_energy"))
        sd = tr.net.state_dict()
        assert all(torch.isfinite(v).all() for v in sd.values())
        nets.append(sd)
        tables.append(tr.table())
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])
    assert all(torch.equal(tables[0][k], tables[1][k]) for k in tables[0])
    assert torch.isfinite(tables[0]["energy"]).any()


def test_kill_and_resume_keep_the_table(tmp_path, tiny_set, one_thread):
    run = tmp_path / "run"
    over = {"run.checkpoint_every": 1, "run.max_steps": 100}

    def child():
        torch.set_num_threads(1)
        tr = _trainer(run, tiny_set, **over)

        def cb(t, info):
            if info["step"] == 3:  # the checkpoint of step 3 is written: record the table, then die
                save_file({k: v.contiguous() for k, v in t.table().items()}, str(tmp_path / "expected.safetensors"))
                os.kill(os.getpid(), signal.SIGKILL)

        tr.train(callback=cb, progress=False)

    p = multiprocessing.get_context("fork").Process(target=child, daemon=True)
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    expected = load_file(str(tmp_path / "expected.safetensors"))
    tr = _trainer(run, tiny_set, **over)
    assert tr.resumed and tr.step == 3
    tab = tr.table()
    assert set(tab) == set(expected) and all(torch.equal(tab[k], expected[k]) for k in tab)
    assert torch.isfinite(tab["energy"]).any()
    before = tab["energy"].clone()
    tr.train_step()
    assert (tr.table()["energy"] <= before).all()


def test_config_and_cli(tmp_path, tiny_set, one_thread):
    from typer.testing import CliRunner

    from human3d.cli.main import app

    c = spin_preset("tiny").with_assignments(["spin.fit.body_iters=7", "spin.fraction_2d=0.25"])
    assert c.spin.fit.body_iters == 7 and c.spin.fraction_2d == 0.25
    with pytest.raises(InvalidInputError, match="spin.fraction_2d"):
        spin_preset("tiny", **{"spin.fraction_2d": 1.5})
    with pytest.raises(InvalidInputError, match="spin.fit.optimizer"):
        spin_preset("tiny", **{"spin.fit.optimizer": "sgd"})
    out = tmp_path / "cli"
    out.mkdir()
    shutil.copy(tiny_set, out / "train_set.safetensors")
    r = CliRunner().invoke(app, ["hmr", "train", "--spin", "--preset", "tiny", "--out", str(out), "--steps", "1",
                                 "--threads", "1", "--set", "spin.max_fits=2", "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "HMR-SPIN" and run["config"]["spin"]["max_fits"] == 2
    r = CliRunner().invoke(app, ["hmr", "train", "--out", str(out), "--steps", "2", "--no-progress"])
    assert r.exit_code == 2 and "HMR-SPIN" in r.output  # an existing SPIN run needs --spin
