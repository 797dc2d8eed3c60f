"""Benchmark learned fitting against SMPLify: PA-MPJPE (mean, median, worst, share above 150 mm) and seconds per
person at batch ``--n`` on held-out synthetic people (Anny; mocap clips held out of every training set, random
shapes and yaw, 2 px noise, 20 % dropped keypoints; COCO-17).

    python tools/bench/hmr.py [--n 32] [--seeds 0,1] [--clips 131_03|holdout] [--threads 1] [--json FILE]

Rows (all after SMPLify's stage 1, 40 rigid iterations):

* ``adam (default)``: SMPLify stage 2, Adam, ``body_iters`` 60 (the default);
* ``adam (4 it)``: the same at 4 iterations (LGD's count of updates: equal iterations);
* ``adam (equal time)``: as many iterations as fit into LGD's measured time per person;
* ``gd (4 steps)``: plain gradient descent on the reprojection energy, 4 steps (best of a step-size grid);
* ``lgd (4 stages)``: the shipped learned-gradient-descent network (``optimizer="lgd"``);
* ``lift (40 it)``: ``init="lift"``: the shipped keypoint lifter's start and 3D keypoints, then 40 stage-2
  iterations with the 3D term, no retries (``--lift-iters``, ``--lift-weights``).

Times are process-CPU seconds per person (the fair measure on a shared machine) at batch ``--n``.

``--images`` adds a second table on *rendered* held-out people (``human3d.hmr.trainer.render_training_set``: one
person per 128 px image, the same held-out clips, random yaw over 360 degrees, phenotypes, clothing and
backgrounds; keypoints = the exact projections of the keypoints inside the image, 2 px noise), with rows:

* ``hmr (alone)``: the shipped HMR regressor, one forward pass (crops from the keypoints' box);
* ``smplify (default)``: SMPLify as above on the same keypoints;
* ``smplify (init hmr)``: the same with HMR's prediction as one more hypothesis (``human3d fit --init hmr``);
* ``lgd``: SMPLify with ``optimizer="lgd"``; ``lgd (init hmr)``: the same with HMR's hypothesis;
* ``lift (40 it)``: as in the first table; ``+ retries``: with the default flip / mirror retries of flagged persons.

``--size`` renders at another size; ``--noise`` sets the pixel noise, ``--noise-frac`` a noise proportional to the
person's size instead (0.004: the keypoint table's 2 px on a ~500 px person; at 128 px the people are 37-96 px
tall, median 54, so the default 2 px is 2-5 % of their size).

``--images-only`` skips the keypoint-only table.

``--smpl`` gives the same image table for the SMPL family on the Anny-derived SMPL-format file
(:func:`human3d.synth.smpl_files.anny_smpl_model`, written into ``--cache``): we cannot ship SMPL-family weights
(users' SMPL files are licensed), so HMR (``data.model`` = that file, ``--hmr-minutes`` of process CPU, a
``--hmr-images`` pre-rendered set) and LGD (``--lgd-minutes``) are trained into ``--cache/hmr`` and ``--cache/lgd``
first, and the keypoint lifter (``--lift-minutes``) into ``--cache/lift``, each reused when its weights are there; the held-out people are rendered with SMPL bodies (random betas,
the same held-out clips mapped onto SMPL's joints)::

    python tools/bench/hmr.py --smpl [--cache .cache/hmr_smpl] [--hmr-minutes 10] [--lgd-minutes 6] [--n 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from human3d.body import load_body_model  # noqa: E402
from human3d.fitting import SMPLifyConfig, smplify  # noqa: E402
from human3d.fitting.inputs import prepare_inputs  # noqa: E402
from human3d.fitting.lgd import gradient_descent  # noqa: E402
from human3d.fitting.optim import Progress  # noqa: E402
from human3d.fitting.stages import init_camera, make_problem, restart_poses, stage_rigid  # noqa: E402
from human3d.fitting.synthetic import DEFAULT_CLIPS, make_synthetic_set  # noqa: E402
from human3d.metrics import pa_mpjpe  # noqa: E402


def clip_sets(spec: str):
    from human3d.motion.mocap import HOLDOUT, list_clips

    if spec == "holdout":
        names = [c.name for c in list_clips(include_eval=False, include_deepmimic=True) if c.name in HOLDOUT]
    else:
        names = [c.strip() for c in spec.split(",") if c.strip()]
    return [(n, DEFAULT_CLIPS if n == "131_03" else (n,)) for n in names]


def cpu_timed(fn):
    c = time.process_time()
    out = fn()
    return out, time.process_time() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="persons per synthetic set (the batch)")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds of the synthetic sets")
    ap.add_argument("--clips", default="131_03", help="held-out clip names, or 'holdout' (every HOLDOUT clip)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--prior", default="simple", help="pose prior of the SMPLify rows (and LGD's energy)")
    ap.add_argument("--json", help="also write per-person PA-MPJPE per row to this file")
    ap.add_argument("--images", action="store_true", help="also the table on rendered people (HMR rows)")
    ap.add_argument("--images-only", action="store_true", help="only the table on rendered people")
    ap.add_argument("--hmr-weights", help="HMR weights (default: the shipped ones)")
    ap.add_argument("--lift-iters", type=int, default=40, help="stage-2 iterations of the lift rows")
    ap.add_argument("--lift-weights", help="keypoint lifter weights (default: the shipped ones)")
    ap.add_argument("--lift-w3d", type=lambda v: v if v == "auto" else float(v),
                    help="keypoints3d_weight of the lift rows: 'auto' or a number (default: SMPLifyConfig's, auto)")
    ap.add_argument("--size", type=int, default=128, help="image table: rendered image size (px)")
    ap.add_argument("--noise", type=float, default=2.0, help="image table: keypoint noise (px, std per axis)")
    ap.add_argument("--noise-frac", type=float, help="image table: keypoint noise as a fraction of the person's "
                    "size instead (e.g. 0.004 = 2 px on a 500 px person, the keypoint table's level)")
    ap.add_argument("--smpl", action="store_true", help="the image table on the Anny-derived SMPL-format file "
                    "(HMR and LGD trained for it into --cache first)")
    ap.add_argument("--cache", default=".cache/hmr_smpl", help="--smpl: folder of the model file and the runs")
    ap.add_argument("--hmr-minutes", type=float, default=10.0, help="--smpl: HMR's process-CPU training budget")
    ap.add_argument("--hmr-images", type=int, default=1500, help="--smpl: HMR's pre-rendered training images")
    ap.add_argument("--lgd-minutes", type=float, default=6.0, help="--smpl: LGD's process-CPU training budget")
    ap.add_argument("--lift-minutes", type=float, default=10.0, help="--smpl: the lifter's process-CPU budget")
    a = ap.parse_args(argv)
    if a.smpl:
        torch.set_num_threads(a.threads)
        return smpl_table(a)
    if a.images_only:
        torch.set_num_threads(a.threads)
        return image_table(a)
    torch.set_num_threads(a.threads)
    model = load_body_model("anny")
    rows, secs, add = recorder(model)
    count = 0

    for clip_name, clips in clip_sets(a.clips):
        for seed in [int(s) for s in a.seeds.split(",")]:
            syn = make_synthetic_set(model, a.n, seed=seed, clips=clips)
            kp, K, gt = syn.keypoints2d, syn.K, syn.keypoints3d
            count += a.n
            fit = lambda **kw: smplify(model, kp, K, prior=a.prior, threads=None, **kw)  # noqa: E731
            w3 = {} if a.lift_w3d is None else {"keypoints3d_weight": a.lift_w3d}
            r, t = cpu_timed(lambda: fit(init="lift", body_iters=a.lift_iters, retry_hypotheses=(),
                                         lift_weights=a.lift_weights, **w3))
            add(f"lift ({a.lift_iters} it)", r.params, t, gt)
            lgd, t_lgd = cpu_timed(lambda: fit(optimizer="lgd"))
            add("lgd (4 stages)", lgd.params, t_lgd, gt)
            r, t60 = cpu_timed(lambda: fit())
            add("adam (default)", r.params, t60, gt)
            r, t4 = cpu_timed(lambda: fit(body_iters=4))
            add("adam (4 it)", r.params, t4, gt)
            # equal time: Adam's per-iteration cost from the two runs above, iterations that fit into LGD's time
            per_it = max((t60 - t4) / 56, 1e-6)
            iters = max(1, 4 + round((t_lgd - t4) / per_it))
            r, t = cpu_timed(lambda: fit(body_iters=iters))
            add("adam (equal time)", r.params, t, gt)
            rows.setdefault("_equal_time_iters", []).append(iters)

            cfg = SMPLifyConfig(threads=None)

            def gd():
                inputs = prepare_inputs(model, kp, K, "coco17", cfg)
                pb = make_problem(model, inputs, None, cfg, Progress(False, 0))
                rigid = stage_rigid(pb, *init_camera(pb))
                g0 = restart_poses(pb, 1)[0]
                best = None
                for lr in (1e-4, 1e-3, 1e-2, 3e-2):
                    p = gradient_descent(pb, rigid, g0, 4, lr).params(pb, rigid.R_body)
                    with torch.no_grad():
                        e = float(pa_mpjpe(model(p).keypoints["coco17"], gt).mean())
                    if best is None or e < best[0]:
                        best = (e, {k: v.detach() for k, v in p.items()})
                return best[1]

            p, t = cpu_timed(gd)
            add("gd (4 steps)", p, t / 4, gt)  # the grid's four runs: one run's time
            print(f"  {clip_name} seed {seed}: done", flush=True)
    iters = rows.pop("_equal_time_iters")
    out = print_rows(f"Anny, {count} held-out people ({a.clips}), prior {a.prior}, batch {a.n}, {a.threads} "
                     f"thread(s); adam (equal time) ran {iters} stage-2 iterations", rows, secs, count)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    if a.images:
        return image_table(a)
    return 0


def heldout_people(model, n: int, size: int, seed: int, clips, noise_px: float = 2.0, noise_frac: float | None = None):
    """The rendered held-out protocol: ``n`` one-person ``size`` px images of ``clips`` (render seed ``1000 + seed``,
    whole body in frame, >= 8 keypoints inside), keypoints = the exact projections of those inside the image plus
    ``noise_px`` Gaussian noise per axis (or, with ``noise_frac``, ``noise_frac`` x the person's size: the longer
    side of its keypoints' box) (confidence 1). Returns ``(kp [n, 17, 3], K [n, 3, 3], kp3d [n, 17, 3]
    camera frame, images: list of [size, size, 3] uint8 arrays)``."""
    from human3d.hmr.trainer import render_training_set

    s = render_training_set(model, n, size, seed=1000 + seed, clips=clips, prior_fraction=0.0, out_of_frame=0.0,
                            min_keypoints=8, progress=False)  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    on = (s["kp2d"][..., 2] > 0).float()
    sigma = torch.full((n,), float(noise_px))
    if noise_frac is not None:
        from human3d.fitting.lift import _box

        sigma = noise_frac * _box(torch.cat([s["kp2d"][..., :2], on[..., None]], -1))[1]
    kp = torch.cat([s["kp2d"][..., :2] + sigma[:, None, None] * torch.randn(s["kp2d"][..., :2].shape, generator=g),
                    on[..., None]], -1)  # fmt: skip
    return kp, s["K"], s["kp3d"], [im.numpy() for im in s["images"]]


def recorder(model):
    """``(rows, secs, add)``: ``add(name, params, seconds, gt)`` appends the persons' PA-MPJPE (mm) to ``rows[name]``
    and the seconds to ``secs[name]``."""
    rows: dict[str, list[float]] = {}
    secs: dict[str, float] = {}

    def add(name, params, seconds, gt):
        with torch.no_grad():
            e = pa_mpjpe(model(params).keypoints["coco17"], gt) * 1000
        rows.setdefault(name, []).extend(e.tolist())
        secs[name] = secs.get(name, 0.0) + seconds

    return rows, secs, add


def print_rows(title: str, rows: dict, secs: dict, count: int) -> dict:
    print(f"\n{title}")
    print(f"{'method':22s} {'mean':>7s} {'median':>7s} {'worst':>7s} {'>150mm':>7s} {'s/person':>9s} {'people/s':>9s}")
    out = {}
    for name, v in rows.items():
        x = torch.tensor(v)
        share = float((x > 150).float().mean())
        sp = secs[name] / count
        print(f"{name:22s} {x.mean():7.1f} {x.median():7.1f} {x.max():7.1f} {share * 100:6.1f}% {sp:9.4f} "
              f"{1 / sp:9.1f}")
        out[name] = {"mean": float(x.mean()), "median": float(x.median()), "worst": float(x.max()),
                     "share_above_150mm": share, "seconds_per_person": sp, "pa_mpjpe_mm": v}  # fmt: skip
    return out


def smpl_models(a):
    """``(model, hmr weights, lgd weights)`` for ``--smpl``: the Anny-derived SMPL file and the runs in ``--cache``
    (trained when their weights are missing, resumed when interrupted)."""
    from human3d.hmr.lgd_trainer import LGDTrainer
    from human3d.hmr.lgd_trainer import preset as lgd_preset
    from human3d.hmr.lift_trainer import LiftTrainer
    from human3d.hmr.lift_trainer import preset as lift_preset
    from human3d.hmr.trainer import HMRTrainer
    from human3d.hmr.trainer import preset as hmr_preset
    from human3d.synth.smpl_files import anny_smpl_model

    cache = Path(a.cache)
    model = anny_smpl_model(cache)
    file = str(cache / "SMPL_NEUTRAL.pkl")
    runs = ((HMRTrainer, hmr_preset, "hmr", a.hmr_minutes, 8000, {"data.n_images": a.hmr_images}),
            (LGDTrainer, lgd_preset, "lgd", a.lgd_minutes, 100000, {}),
            (LiftTrainer, lift_preset, "lift", a.lift_minutes, 100000, {}))
    weights = []
    for cls, make, name, minutes, steps, extra in runs:
        w = cache / name / f"{name}.safetensors"
        if not w.is_file():
            print(f"training {name} for the SMPL file: {minutes} process-CPU minutes into {cache / name}", flush=True)
            cfg = make("fast", **{"data.model": file, **extra}).replace(**{
                "run.time_budget_s": minutes * 60, "run.budget_clock": "process", "run.max_steps": steps,
                "run.threads": a.threads})  # fmt: skip
            cls(cache / name, config=cfg).train()
        weights.append(str(w))
    return model, weights[0], weights[1], weights[2]


def smpl_table(a) -> int:
    """``--smpl``: the image table on the Anny-derived SMPL-format file (module docstring)."""
    model, hmr_w, lgd_w, lift_w = smpl_models(a)
    a.lift_weights = a.lift_weights or lift_w
    return image_table(a, model, hmr_w, lgd_w, "SMPL (Anny-derived file)")


def image_table(a, model=None, hmr_weights=None, lgd_weights=None, label: str = "Anny") -> int:
    """The table on rendered held-out people (module docstring) for ``model`` (None: Anny) with those weights
    (None: ``--hmr-weights`` / the shipped ones)."""
    import numpy as np

    from human3d.hmr.predict import load_hmr, predict_people

    model = model if model is not None else load_body_model("anny")
    hmr_weights = hmr_weights or a.hmr_weights
    lgd = {} if lgd_weights is None else {"lgd_weights": lgd_weights}
    net = load_hmr(hmr_weights)
    rows, secs, add = recorder(model)
    count = 0

    for clip_name, clips in clip_sets(a.clips):
        for seed in [int(s) for s in a.seeds.split(",")]:
            kp, K, gt, imgs = heldout_people(model, a.n, a.size, seed, clips, a.noise, a.noise_frac)
            n = kp.shape[0]
            count += n
            pred, t_hmr = cpu_timed(lambda: predict_people(net, model, imgs, np.arange(n), K, keypoints=kp))
            add("hmr (alone)", pred, t_hmr, gt)
            fit = lambda **kw: smplify(model, kp, K, prior=a.prior, threads=None, image_size=(a.size, a.size), **kw)  # noqa: E731
            r, t = cpu_timed(lambda: fit())
            add("smplify (default)", r.params, t, gt)
            r, t2 = cpu_timed(lambda: fit(init=pred))
            add("smplify (init hmr)", r.params, t_hmr + t2, gt)  # HMR's forward pass counted
            r, t3 = cpu_timed(lambda: fit(optimizer="lgd", **lgd))
            add("lgd", r.params, t3, gt)
            r, t4 = cpu_timed(lambda: fit(optimizer="lgd", init=pred, **lgd))
            add("lgd (init hmr)", r.params, t_hmr + t4, gt)
            lift = dict(init="lift", body_iters=a.lift_iters, lift_weights=a.lift_weights)
            if a.lift_w3d is not None:
                lift["keypoints3d_weight"] = a.lift_w3d
            r, t5 = cpu_timed(lambda: fit(retry_hypotheses=(), **lift))
            add(f"lift ({a.lift_iters} it)", r.params, t5, gt)
            r, t6 = cpu_timed(lambda: fit(**lift))
            add(f"lift ({a.lift_iters} it) + retries", r.params, t6, gt)
            print(f"  {clip_name} seed {seed}: done", flush=True)
    noise = f"{a.noise_frac * 100:g} % of the person's size" if a.noise_frac is not None else f"{a.noise:g} px"
    noise += f"; lift rows keypoints3d_weight {a.lift_w3d if a.lift_w3d is not None else 'auto (default)'}"
    title = (f"{label}, {count} rendered held-out people ({a.clips}), {a.size} px images, keypoint noise {noise}, "
             f"prior {a.prior}, batch {a.n}, "
             f"{a.threads} thread(s); HMR weights {hmr_weights or 'shipped'}"
             + (f", LGD weights {lgd_weights}" if lgd_weights else ""))  # fmt: skip
    out = print_rows(title, rows, secs, count)
    if a.json:
        p = Path(a.json)
        p.with_name(p.stem + "_images.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
