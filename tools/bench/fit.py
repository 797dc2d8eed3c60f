"""Benchmark SMPLify fitting (Anny, or an SMPL-format file): seconds per person at batch 1 and 32, and 3D accuracy
on synthetic mocap ground truth (CMU clip 131_03, held out of every shipped pose prior, retargeted on random
shapes, 2 px noise, 20% dropped keypoints) per pose prior, averaged over ``--seeds`` (one synthetic set of ``--n``
persons each).

    python tools/bench/fit.py [--n 32] [--seeds 0,1] [--threads 1] [--priors none,simple,gaussian,vae,flow,...]
    python tools/bench/fit.py --model smpl [--json tools/bench/results/fit_priors_smpl.json]

``--model smpl`` fits an SMPL-format model file derived from Anny (the licensed SMPL files are absent:
:func:`human3d.fitting.synthetic.smpl_data_from_anny`, written to a temporary folder and read by the SMPL loader),
posed with the same mocap mapped onto SMPL's joints, and uses the SMPL-family priors (``smpl_pose_<kind>``).

The row "simple (previous defaults)" reruns the earlier stage-2 settings (Adam lr 0.05, eps 1e-8, prior weights
0.03 -> 0.0012) for comparison; "vae" scores the VAE's ELBO on the pose groups (the default), "vae (latent)"
optimises its latent code instead (VPoser-style, ``SMPLifyConfig.latent_pose``).

Prints wall and process-CPU seconds (the CPU column is the one to trust on a shared machine) and, per prior,
PA-MPJPE / MPJPE (root = hip midpoint) in mm over the COCO-17 3D keypoints, the mean reprojection error and the
process-CPU seconds per person of each prior's fits (batch ``--n``).

``--retries`` compares SMPLify's hypothesis retries instead (:mod:`human3d.fitting.hypotheses`: none, for the
persons the plausibility checks flag, for everyone): PA-MPJPE mean / median / worst / share above 150 mm, CPU
seconds per person and which hypothesis won how often.

    python tools/bench/fit.py --retries --clips holdout --n 16 --seeds 0 --priors auto --json tools/bench/results/fit_retries.json

``--hmr-init`` compares SMPLify with and without the HMR regressor's start (one more hypothesis) on ``--n`` rendered
synthetic photos of the held-out clips:

    python tools/bench/fit.py --hmr-init --clips holdout --n 64 --seeds 0 --priors auto --json tools/bench/results/fit_hmr_init.json

``--clips`` evaluates on other clips held out of the priors (names of the pose corpus,
:func:`human3d.motion.mocap.list_clips`; ``holdout`` = every clip of ``human3d.motion.mocap.HOLDOUT`` in the corpus the
priors were trained on: CMU BVH, DAZ salsa, expmap CSV, FAIR), each retargeted with its rig group's calibration as
in the priors' training data (131_03 keeps :data:`~human3d.fitting.synthetic.DEFAULT_CLIPS`' own calibration, so
that the default run is unchanged); ``--fps`` picks frames at that rate. With several clips it prints one table
per clip, then the pooled table (mean +- standard error over persons) and paired differences (``--pairs``,
e.g. flow - vae: the same persons fitted with both priors), and ``--json`` keeps the per-person PA-MPJPE.

    python tools/bench/fit.py --clips holdout --fps 30 --seeds 0,1 --priors none,simple,gaussian,vae,flow,diffusion \\
        --no-variants --json tools/bench/results/fit_priors_holdout.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

# Running as a script puts tools/bench first on sys.path, where tools/bench/generative.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from human3d.body import load_body_model  # noqa: E402
from human3d.fitting import SMPLifyConfig, smplify  # noqa: E402
from human3d.fitting.synthetic import make_synthetic_set  # noqa: E402
from human3d.metrics import mpjpe, pa_mpjpe  # noqa: E402


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def resolve_clips(spec: str) -> list[str]:
    """Clip names of ``--clips`` ('holdout': the HOLDOUT clips of the corpus the priors were trained on)."""
    from human3d.motion.mocap import HOLDOUT, list_clips

    if spec.strip() == "holdout":
        return [c.name for c in list_clips(include_eval=False) if c.name in HOLDOUT]
    names = [c.strip() for c in spec.split(",") if c.strip()]
    if not names:
        raise SystemExit("--clips: expected clip names or 'holdout'")
    return names


def clip_source(name: str):
    """``clips`` argument of make_synthetic_set: 131_03 keeps DEFAULT_CLIPS (its own calibration), others by name."""
    from human3d.fitting.synthetic import DEFAULT_CLIPS

    return DEFAULT_CLIPS if name == "131_03" else (name,)


def se(x: torch.Tensor) -> float:
    """Standard error of the mean."""
    return float(x.std() / x.numel() ** 0.5) if x.numel() > 1 else float("nan")


def paired(pp: dict, pairs: str, quiet: bool) -> dict:
    """Paired differences a - b (mean, s.e., n) of per-person PA-MPJPE for the pairs 'a-b,...' present in ``pp``."""
    out = {}
    for pair in pairs.split(","):
        a, b = pair.split("-", 1)
        if a in pp and b in pp:
            d = pp[a] - pp[b]
            out[f"{a} - {b}"] = {"mean": round(float(d.mean()), 2), "se": round(se(d), 2), "n": d.numel()}
            if not quiet:
                print(f"# {a} - {b}: {float(d.mean()):+.1f} +- {se(d):.1f} mm (paired, n={d.numel()})")
    return out


def mark_occlusion(model, d, confidence: float = 0.3, thickness: float = 0.12):
    """Keypoints ``[B, K, 3]`` of synthetic set ``d`` with those hidden by the body itself marked occluded
    (confidence ``confidence``, as a detector scores them): the ground-truth mesh's z-buffer at the keypoint's
    pixel is more than ``thickness`` m in front of it."""
    from human3d.geometry.cameras import Cameras
    from human3d.render.rasterizer import rasterize_mesh

    with torch.no_grad():
        out = model(d.params)
        B = out.vertices.shape[0]
        frag = rasterize_mesh(out.vertices, out.faces, Cameras(d.K, torch.eye(4).expand(B, 4, 4), d.width, d.height))
    u = d.clean2d[..., 0].floor().long().clamp(0, d.width - 1)
    v = d.clean2d[..., 1].floor().long().clamp(0, d.height - 1)
    surf = frag.depth[torch.arange(B)[:, None], v, u]  # [B, K]
    hidden = frag.mask[torch.arange(B)[:, None], v, u] & (surf < d.keypoints3d[..., 2] - thickness)
    kp = d.keypoints2d.clone()
    kp[..., 2] = torch.where(hidden & (kp[..., 2] > 0), torch.full_like(kp[..., 2], confidence), kp[..., 2])
    return kp


def bench_retries(model, clip_sets: dict, prior: str, threads: int, json_path: str | None, modes_spec: str,
                  occlusion: bool) -> None:  # fmt: skip
    """``--retries``: PA-MPJPE (mean / median / worst / share above 150 mm) and process-CPU seconds per person of
    SMPLify without retries, with the flip / mirror retries for the persons the plausibility checks flag (the
    default), with the retries for everyone (``retry_all``), and with failed checks weighing in the choice
    (``check_weight``). ``occlusion``: keypoints hidden by the body marked occluded (:func:`mark_occlusion`)."""
    every = {"no retries": dict(retry_hypotheses=()), "retries, flagged (default)": {},
             "retries, everyone": dict(retry_all=True),
             "retries, flagged, check_weight 0.05": dict(check_weight=0.05),
             "retries, everyone, check_weight 0.05": dict(retry_all=True, check_weight=0.05)}  # fmt: skip
    keys = list(every)
    modes = {keys[int(i)]: every[keys[int(i)]] for i in modes_spec.split(",")}
    rows = {m: [] for m in modes}
    cpu = {m: 0.0 for m in modes}
    wins: dict[str, dict[str, int]] = {m: {} for m in modes}
    for clip, sets in clip_sets.items():
        for d in sets:
            for m, kw in modes.items():
                kp = mark_occlusion(model, d) if occlusion else d.keypoints2d
                res, _, c = timed(lambda: smplify(model, kp, d.K, prior=prior, threads=threads,
                                                  image_size=(d.width, d.height), **kw))  # fmt: skip
                with torch.no_grad():
                    rows[m].append(pa_mpjpe(model(res.params).keypoints["coco17"], d.keypoints3d) * 1000)
                cpu[m] += c
                for h in res.hypotheses:
                    wins[m][h["winner"]] = wins[m].get(h["winner"], 0) + 1
        print(f"  {clip}: done", flush=True)
    n = sum(len(s) * s[0].keypoints2d.shape[0] for s in clip_sets.values())
    print(f"\n{n} held-out persons ({', '.join(clip_sets)}), prior {prior}" +
          (", self-occluded keypoints marked (confidence 0.3)" if occlusion else ""))
    print("\n| hypotheses | PA-MPJPE mean mm | median | worst | > 150 mm | CPU s / person | winners |")
    print("|---|---|---|---|---|---|---|")
    out = {}
    for m in modes:
        x = torch.cat(rows[m])
        share = float((x > 150).float().mean())
        print(f"| {m} | {float(x.mean()):.1f} | {float(x.median()):.1f} | {float(x.max()):.1f} | {100 * share:.1f} % | "
              f"{cpu[m] / n:.3f} | {wins[m]} |", flush=True)  # fmt: skip
        out[m] = {"mean": round(float(x.mean()), 1), "median": round(float(x.median()), 1),
                  "worst": round(float(x.max()), 1), "share_above_150mm": round(share, 4),
                  "cpu_s_per_person": round(cpu[m] / n, 3), "winners": wins[m],
                  "pa_mpjpe_mm": [round(float(v), 1) for v in x]}  # fmt: skip
    if json_path:
        from human3d.io_utils import atomic_write_text

        atomic_write_text(Path(json_path), json.dumps({"bench": "tools/bench/fit.py --retries", "persons": n,
                                                       "occlusion": occlusion,
                                                       "clips": list(clip_sets), "rows": out}, indent=1) + "\n")


def bench_hmr_init(model, clip_names: list[str], n: int, seed: int, prior: str, threads: int, json_path) -> None:
    """``--hmr-init``: SMPLify with and without the HMR regressor's start (``init``, one more hypothesis) on ``n``
    rendered synthetic photos (:class:`~human3d.synth.generator.SynthGenerator`, 256 px, one person, poses from
    the held-out ``clip_names``; keypoints = the rendered truth, visibility 1 -> confidence 0.3, 2 -> 1).
    PA-MPJPE against the true 3D keypoints; CPU seconds per person include HMR's prediction."""
    from human3d.hmr.predict import hmr_initializer
    from human3d.synth.generator import SynthConfig, SynthGenerator

    gen = SynthGenerator(model, SynthConfig(size=256, max_people=1, prior_fraction=0.0, clips=tuple(clip_names),
                                            out_of_frame=0.0, occluders=0.0))  # fmt: skip
    batch = gen.generate(n, seed=seed)
    images = (batch.images * 255).round().clamp(0, 255).to(torch.uint8).numpy()  # [B, H, W, 3]
    k2 = batch.keypoints2d["coco17"][:, 0]  # [B, 17, 3] (u, v, visibility)
    conf = torch.where(k2[..., 2] >= 2, 1.0, torch.where(k2[..., 2] >= 1, 0.3, 0.0))
    kp = torch.cat([k2[..., :2] * (conf[..., None] > 0), conf[..., None]], -1)
    K, gt = batch.cameras.K, batch.keypoints3d["coco17"][:, 0]  # camera-frame fit; PA-MPJPE is frame-free
    size = (images.shape[2], images.shape[1])
    init_fn = hmr_initializer(model)

    def hmr():
        parts = [init_fn(images[b], kp[b : b + 1], K[b]) for b in range(n)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    init, _, t_hmr = timed(hmr)
    modes = {"default, no retries": (None, dict(retry_hypotheses=())), "default (flagged retries)": (None, {}),
             "hmr init, no retries": (init, dict(retry_hypotheses=())), "hmr init + flagged retries": (init, {}),
             "hmr init + retries for everyone": (init, dict(retry_all=True))}  # fmt: skip
    print(f"\n{n} rendered synthetic photos (held-out clips {', '.join(clip_names)}), prior {prior}; HMR prediction "
          f"{t_hmr / n:.3f} CPU s / person")  # fmt: skip
    print("\n| start | PA-MPJPE mean mm | median | worst | > 150 mm | CPU s / person | winners |")
    print("|---|---|---|---|---|---|---|")
    out = {}
    for m, (ini, kw) in modes.items():
        res, _, c = timed(lambda: smplify(model, kp, K, prior=prior, threads=threads, image_size=size, init=ini, **kw))
        c += t_hmr if ini is not None else 0.0
        with torch.no_grad():
            x = pa_mpjpe(model(res.params).keypoints["coco17"], gt) * 1000
        wins: dict[str, int] = {}
        for h in res.hypotheses:
            wins[h["winner"]] = wins.get(h["winner"], 0) + 1
        share = float((x > 150).float().mean())
        print(f"| {m} | {float(x.mean()):.1f} | {float(x.median()):.1f} | {float(x.max()):.1f} | {100 * share:.1f} % | "
              f"{c / n:.3f} | {wins} |", flush=True)  # fmt: skip
        out[m] = {"mean": round(float(x.mean()), 1), "median": round(float(x.median()), 1),
                  "worst": round(float(x.max()), 1), "share_above_150mm": round(share, 4),
                  "cpu_s_per_person": round(c / n, 3), "winners": wins, "pa_mpjpe_mm": [round(float(v), 1) for v in x]}  # fmt: skip
    if json_path:
        from human3d.io_utils import atomic_write_text

        atomic_write_text(Path(json_path), json.dumps({"bench": "tools/bench/fit.py --hmr-init", "persons": n,
                                                       "clips": clip_names, "seed": seed, "rows": out}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="persons in the synthetic set (and the large batch)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads during the fit (SMPLifyConfig.threads)")
    ap.add_argument("--priors", default="none,simple,gaussian,vae,flow,diffusion,gan",
                    help="comma-separated pose priors (kinds of human3d.fitting.priors.PRIOR_KINDS; 'auto' = flow)")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds of the synthetic sets (results averaged)")
    ap.add_argument("--model", default="anny", choices=("anny", "smpl"),
                    help="anny, or smpl: an SMPL-format file derived from Anny (built in a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the per-prior figures to this JSON file")
    ap.add_argument("--clips", default="131_03",
                    help="comma-separated held-out clip names of the pose corpus, or 'holdout' = every clip of "
                         "human3d.motion.mocap.HOLDOUT in it (default 131_03: synthetic.DEFAULT_CLIPS)")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate the mocap frames are drawn at")
    ap.add_argument("--no-variants", action="store_true",
                    help="skip the extra rows 'simple (previous defaults)' and 'vae (latent)'")
    ap.add_argument("--pairs", default="flow-vae,flow-simple",
                    help="comma-separated paired differences a-b of PA-MPJPE (same persons) to report")
    ap.add_argument("--retries", action="store_true",
                    help="compare the hypothesis retries (none / flagged persons / everyone) with the first of "
                         "--priors instead of the prior table")
    ap.add_argument("--modes", default="0,1,2", help="--retries: which rows (0 none, 1 flagged, 2 everyone, "
                    "3 flagged + check_weight 0.05, 4 everyone + check_weight 0.05)")
    ap.add_argument("--occlusion", action="store_true", help="--retries: mark keypoints hidden by the body "
                    "occluded (confidence 0.3), as a detector would")
    ap.add_argument("--hmr-init", action="store_true",
                    help="compare SMPLify with and without the HMR regressor's start on --n rendered synthetic photos")
    args = ap.parse_args()

    if args.model == "anny":
        model = load_body_model("anny")
    else:
        from human3d.body.smpl import SMPL
        from human3d.fitting.synthetic import smpl_data_from_anny

        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "SMPL_NEUTRAL.pkl"
        with open(path, "wb") as f:  # our own arrays; the SMPL loader reads it with its restricted unpickler
            pickle.dump(smpl_data_from_anny(dtype=__import__("numpy").float32), f, protocol=2)
        model = SMPL(path)
    seeds = [int(v) for v in args.seeds.split(",")]
    clip_names = resolve_clips(args.clips)
    fps = dict(fps=args.fps) if args.fps != 10.0 else {}
    if args.hmr_init:
        return bench_hmr_init(model, clip_names, args.n, seeds[0], args.priors.split(",")[0], args.threads, args.json)
    clip_sets = {c: [make_synthetic_set(model, args.n, seed=sd, clips=clip_source(c), **fps) for sd in seeds]
                 for c in clip_names}  # fmt: skip
    if args.retries:
        return bench_retries(model, clip_sets, args.priors.split(",")[0], args.threads, args.json, args.modes,
                             args.occlusion)
    sets = clip_sets[clip_names[0]]
    ds = sets[0]
    cfg = SMPLifyConfig(threads=args.threads)
    print(f"SMPLify on {args.model}: camera_iters={cfg.camera_iters}, body_iters={cfg.body_iters}, threads={args.threads}, "
          f"{args.n} synthetic persons ({ds.width}x{ds.height}, f=1200 px, 2 px noise, 20% dropped)")  # fmt: skip
    smplify(model, ds.keypoints2d[:2], ds.K[:2], config=cfg.replace(body_iters=2, camera_iters=2))  # warm-up

    print("\n| batch | wall s | CPU s | wall s / person | CPU s / person |")
    print("|---|---|---|---|---|")
    timing = {}
    for B in (1, args.n):
        _, w, c = timed(lambda: smplify(model, ds.keypoints2d[:B], ds.K[:B], config=cfg,
                                        image_size=(ds.width, ds.height)))  # fmt: skip
        print(f"| {B} | {w:.2f} | {c:.2f} | {w / B:.3f} | {c / B:.3f} |", flush=True)
        timing[str(B)] = {"wall_s": round(w, 3), "cpu_s": round(c, 3)}

    root = lambda X: X - X[:, 11:13].mean(1, keepdim=True)  # noqa: E731 - hip midpoint
    old = cfg.replace(lr_body=0.05, adam_eps=1e-8, pose_prior_weights=(0.03, 0.006, 0.0012))
    rows = []
    for prior in args.priors.split(","):
        if prior == "simple" and args.model == "anny" and not args.no_variants:
            rows.append(("simple (previous defaults)", "simple", old))
        rows.append((prior, prior, cfg))
        if prior == "vae" and not args.no_variants:
            rows.append(("vae (latent)", "vae", cfg.replace(latent_pose=True)))
    per_clip, per_person = {}, {}
    for clip, sets in clip_sets.items():
        if len(clip_sets) > 1:
            print(f"\n## clip {clip}")
        print(f"\n| prior | PA-MPJPE mm | median mm | MPJPE mm | reprojection px | wall s | CPU s / person |  "
              f"({len(seeds)} x {args.n} persons, batch {args.n})")
        print("|---|---|---|---|---|---|---|")
        results, pp = {}, {}
        for label, prior, c in rows:
            pas, mps, rps, wall, cpu = [], [], [], 0.0, 0.0
            try:
                for d in sets:
                    res, w, cp = timed(lambda: smplify(model, d.keypoints2d, d.K, prior=prior, config=c,
                                                      image_size=(d.width, d.height)))  # fmt: skip
                    wall, cpu = wall + w, cpu + cp
                    with torch.no_grad():
                        X = model(res.params).keypoints["coco17"]
                    pas.append(pa_mpjpe(X, d.keypoints3d) * 1000)
                    mps.append(mpjpe(root(X), root(d.keypoints3d)) * 1000)
                    rps.append(res.reprojection_error_px)
            except Exception as e:  # noqa: BLE001 - a prior that is not shipped yet is reported, not fatal
                print(f"| {label} | n/a ({type(e).__name__}: {str(e)[:60]}) | | | | | |")
                results[label] = {"error": f"{type(e).__name__}: {e}"}
                continue
            pa, mp, rp = torch.cat(pas), torch.cat(mps), torch.cat(rps)
            print(f"| {label} | {float(pa.mean()):.1f} | {float(pa.median()):.1f} | {float(mp.mean()):.1f} | "
                  f"{float(rp.mean()):.2f} | {wall:.1f} | {cpu / pa.numel():.3f} |", flush=True)  # fmt: skip
            results[label] = {
                "pa_mpjpe_mean_mm": round(float(pa.mean()), 1), "pa_mpjpe_median_mm": round(float(pa.median()), 1),
                "mpjpe_mean_mm": round(float(mp.mean()), 1), "reprojection_px": round(float(rp.mean()), 2),
                "wall_s": round(wall, 1), "cpu_s_per_person": round(cpu / pa.numel(), 3),
            }  # fmt: skip
            pp[label] = pa
        if len(clip_sets) > 1:
            for label, pa in pp.items():
                results[label]["pa_mpjpe_se_mm"] = round(se(pa), 2)
            results["paired_differences_mm"] = paired(pp, args.pairs, quiet=False)
        per_clip[clip], per_person[clip] = results, pp
    results = per_clip[clip_names[0]]
    pooled = None
    if len(clip_sets) > 1:
        labels = [r[0] for r in rows if all(r[0] in pp for pp in per_person.values())]
        pool = {label: torch.cat([per_person[c][label] for c in clip_names]) for label in labels}
        print(f"\n## pooled over {len(clip_names)} clips ({len(clip_names)} x {len(seeds)} x {args.n} persons)")
        print("\n| prior | PA-MPJPE mm (mean +- s.e.) | median mm | " + " | ".join(clip_names) + " |")
        print("|---|---|---|" + "---|" * len(clip_names))
        pooled = {}
        for label in labels:
            pa = pool[label]
            cells = " | ".join(f"{per_clip[c][label]['pa_mpjpe_mean_mm']:.1f}" for c in clip_names)
            print(f"| {label} | {float(pa.mean()):.1f} +- {se(pa):.1f} | {float(pa.median()):.1f} | {cells} |")
            pooled[label] = {"pa_mpjpe_mean_mm": round(float(pa.mean()), 1), "pa_mpjpe_se_mm": round(se(pa), 2),
                             "pa_mpjpe_median_mm": round(float(pa.median()), 1)}  # fmt: skip
        print("\npaired differences of PA-MPJPE (mm, mean +- s.e. over the same persons; negative: the first is better)")
        pooled["paired_differences_mm"] = paired(pool, args.pairs, quiet=True)
        print("\n| pair | pooled | " + " | ".join(clip_names) + " | clips where the first is better |")
        print("|---|---|" + "---|" * len(clip_names) + "---|")
        for pair, v in pooled["paired_differences_mm"].items():
            per = [per_clip[c]["paired_differences_mm"].get(pair) for c in clip_names]
            cells = " | ".join(f"{p['mean']:+.1f} +- {p['se']:.1f}" if p else "n/a" for p in per)
            wins = sum(1 for p in per if p and p["mean"] < 0)
            print(f"| {pair} | {v['mean']:+.1f} +- {v['se']:.1f} | {cells} | {wins} / {len(clip_names)} |")
    if args.json:
        from human3d.io_utils import atomic_write_text

        out = {
            "bench": f"tools/bench/fit.py --model {args.model} --priors {args.priors} --seeds {args.seeds} "
                     f"--n {args.n} --threads {args.threads}",
            "model": args.model, "persons": len(seeds) * args.n, "timing_by_batch": timing, "priors": results,
        }  # fmt: skip
        if pooled is not None:
            out["bench"] += f" --clips {args.clips} --fps {args.fps:g}" + (" --no-variants" if args.no_variants else "")
            out.update(clips=clip_names, persons_per_clip=len(seeds) * args.n, pooled=pooled, per_clip=per_clip,
                       per_person_pa_mpjpe_mm={c: {k: [round(float(v), 1) for v in pa] for k, pa in pp.items()}
                                               for c, pp in per_person.items()})  # fmt: skip
            del out["priors"]
        atomic_write_text(Path(args.json), json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
