"""Implicit-surface benchmark: surface reconstruction from points sampled on the shared watertight meshes.

For each mesh (spot, bunny, armadillo in /work/shared/data/meshes_watertight) and each method (hashsdf, igr) it
samples ``--points`` points with normals, fits for ``--minutes`` of this process's CPU time (one thread, so CPU
minutes are honest on a shared machine), extracts the mesh by MISE at 256^3 and prints Chamfer-L1 (absolute and
relative to the bounding-box diagonal), normal consistency and F-score at 1 % of the diagonal (100k samples each),
IoU from 100k uniform samples, and the sign-distance backends and MISE vs dense timings.

    .venv/bin/python tools/bench/implicit.py [--minutes 3] [--meshes spot bunny armadillo] [--methods hashsdf igr]

``--shapes RUN`` benchmarks a learned shape space instead (a DeepSDF run over Anny bodies, e.g. ``human3d implicit
train-shapes --preset bodies --minutes 8 --set run.budget_clock=process --threads 1 --out RUN``): on held-out Anny
bodies (a seed the run never saw) it renders one depth view (``--view-size`` px, yaw 30 deg, elevation 10 deg),
back-projects it, and completes the body by optimising the code with each prior (none, the Gaussian, the flow; the
prior weight chosen per prior on ``--n-val`` validation bodies from ``--weights``), against the mean shape (the decoder
at the mean training code). It prints Chamfer-L1 (cm, 30k samples each) mean / median / worst, the priors' held-out
log-likelihood of codes fit to the full ground truth, and the run's training CPU minutes.

    .venv/bin/python tools/bench/implicit.py --shapes RUN [--n-test 8] [--n-val 2] [--picture docs/x.png]

``--occnet RUN`` adds (or, without ``--shapes``, runs alone) the occupancy network's row: an OccNet run over Anny bodies
(``human3d implicit train-shapes --method occnet ...``) completes the same held-out bodies from the same depth views
(the held-out seed is the run's seed + 10007, as for ``--shapes``: give both runs the same seed) in one forward pass
(encoder + MISE at ``--resolution``); it prints Chamfer-L1 (cm) mean / median / worst, the decoder at the mean code of
the training views as the unconditioned baseline, and CPU seconds per shape (forward pass + MISE + the metric, as for DeepSDF's row).

    .venv/bin/python tools/bench/implicit.py --shapes DEEPSDF_RUN --occnet OCCNET_RUN [--n-test 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from human3d.data.paths import shared_data_dir  # noqa: E402
from human3d.implicit.extract import dense_grid, marching_cubes, mise_grid  # noqa: E402
from human3d.implicit.trainer import SurfaceFitTrainer, compare_meshes, preset  # noqa: E402

MESHES = {"spot": "spot_triangulated.obj", "bunny": "bunny.obj", "armadillo": "armadillo.obj"}


def fit_one(path: Path, method: str, minutes: float, points: int, out: Path) -> dict:
    cfg = preset("igr" if method == "igr" else "fast", n_points=points, mesh_resolution=256,
                 **{"run.time_budget_s": minutes * 60, "run.budget_clock": "process", "run.threads": 1,
                    "run.max_steps": 10**6, "run.checkpoint_every": 10**6, "run.log_every": 50})  # fmt: skip
    t = SurfaceFitTrainer(out, data=path, config=cfg)
    info = t.train(progress=False)
    m = t.extract(256)
    metrics = compare_meshes(m.vertices, m.faces, path, n=100_000, pred_inside=t.inside)
    return {"steps": info["step"], "cpu_s": info["elapsed_s"], **metrics}


def extraction_timings(trainer_run: Path) -> list[tuple[int, float, float, int, int]]:
    t = SurfaceFitTrainer.from_run(trainer_run)
    fn = t.field()
    rows = []
    for res in (128, 256):
        t0 = time.perf_counter()
        g, n_eval = mise_grid(fn, res)
        marching_cubes(g)
        t_mise = time.perf_counter() - t0
        t0 = time.perf_counter()
        marching_cubes(dense_grid(fn, res))
        t_dense = time.perf_counter() - t0
        rows.append((res, t_mise, t_dense, n_eval, (res + 1) ** 3))
    return rows


def _stats(x) -> str:
    x = np.asarray(x) * 100
    if np.isnan(x).any():
        return f"{int(np.isnan(x).sum())}/{len(x)} empty meshes; " + (_stats(x[~np.isnan(x)] / 100) if (~np.isnan(x)).any() else "")
    return f"mean {x.mean():6.2f}  median {np.median(x):6.2f}  worst {x.max():6.2f}"


def shape_bench(run: Path, n_test: int, n_val: int, weights: list[float], steps: int, view_size: int,
                resolution: int, noise: float, picture: Path | None) -> None:
    """The completion benchmark of a DeepSDF run over Anny bodies (see the module docstring)."""
    from human3d.implicit.completion import CompletionConfig, chamfer_to_mesh, complete_code, depth_view
    from human3d.implicit.models import fit_latent
    from human3d.implicit.sampling import sample_sdf
    from human3d.implicit.shapes import ANNY_FRAME, ShapeSpaceTrainer, anny_bodies
    from human3d.train.core import read_log

    t = ShapeSpaceTrainer.from_run(run)
    cfg = t.config
    if cfg.family != "anny":
        raise SystemExit(f"--shapes: '{run}' is a {cfg.family} run; the benchmark needs an Anny run")
    log = read_log(run)
    print(f"run {run}: {t.codes.shape[0]} bodies ({cfg.poses} poses), latent {cfg.latent_dim}, decoder "
          f"{cfg.n_layers}x{cfg.hidden}, {t.step} steps, {t.elapsed / 60:.1f} training minutes "
          f"({cfg.run.budget_clock} clock, {cfg.run.threads or 'default'} thread(s)); final clamped L1 "
          f"{log[-1].get('clamped_l1', float('nan')):.4f}", flush=True)
    priors = {"none": None, "gaussian": t.code_prior("gaussian"), "flow": t.code_prior("flow")}
    dec, mean = t.decoder, t.codes.mean(0)
    _, hv, hf = anny_bodies(n_val + n_test, seed=cfg.run.seed + 10_007, poses=cfg.poses,
                            child_fraction=cfg.child_fraction)  # fmt: skip
    views = []
    for k in range(len(hv)):
        v = depth_view(hv[k], hf, size=view_size, yaw=30.0, elevation=10.0, noise=noise, seed=k)
        views.append((torch.tensor(ANNY_FRAME.to_unit(v.points), dtype=torch.float32),
                      torch.tensor(ANNY_FRAME.to_unit(v.origin[None])[0], dtype=torch.float32)))  # fmt: skip

    def run_one(k: int, prior, w: float):
        pu, ou = views[k]
        z = complete_code(dec, pu, ou, prior, CompletionConfig(steps=steps, prior_weight=w, batch=2048), z0=mean)
        m = t.extract(z, resolution)
        return chamfer_to_mesh(m.vertices, m.faces, hv[k], hf), m

    best = {"none": 0.0}
    for name in ("gaussian", "flow"):
        scores = {w: np.mean([run_one(k, priors[name], w)[0] for k in range(n_val)]) for w in weights}
        best[name] = min(scores, key=scores.get)
        print(f"validation ({n_val} bodies) {name:8s} prior weight -> Chamfer-L1 cm: "
              + ", ".join(f"{w:g}: {100 * c:.2f}" for w, c in scores.items()) + f"  -> {best[name]:g}", flush=True)
    mm = t.extract(mean, resolution)
    rows = {"mean shape": [], **{f"complete ({n})": [] for n in priors}}
    meshes = {}
    t0 = time.process_time()
    for k in range(n_val, n_val + n_test):
        rows["mean shape"].append(chamfer_to_mesh(mm.vertices, mm.faces, hv[k], hf))
        for name, prior in priors.items():
            cd, m = run_one(k, prior, best[name])
            rows[f"complete ({name})"].append(cd)
            if k == n_val:
                meshes[name] = m
        print(f"  body {k - n_val}: " + "  ".join(f"{n} {100 * r[-1]:.2f}" for n, r in rows.items()), flush=True)
    cpu = (time.process_time() - t0) / max(1, n_test * len(priors))
    print(f"held-out bodies: {n_test}; one depth view {view_size}x{view_size} px (noise {noise * 1000:g} mm), "
          f"{steps} Adam steps, MISE {resolution}^3; Chamfer-L1 in cm")
    for name, r in rows.items():
        print(f"  {name:20s} {_stats(r)}")
    wins = {n: int(np.sum(np.array(rows[f"complete ({n})"]) < np.array(rows["complete (gaussian)"])))
            for n in ("flow", "none")}  # fmt: skip
    print(f"  flow better than gaussian on {wins['flow']}/{n_test} bodies; no prior better than gaussian on "
          f"{wins['none']}/{n_test}; {cpu:.1f} CPU s per completion (incl. extraction and metric)")
    # the priors on held-out codes: codes fit to each body's full ground truth (8192 DeepSDF samples, 300 steps)
    zs = []
    for k in range(n_val, n_val + n_test):
        smp = sample_sdf(hv[k], hf, 8192, seed=k, normalization=ANNY_FRAME)
        zs.append(fit_latent(dec, torch.tensor(smp.points, dtype=torch.float32), torch.tensor(smp.sdf, dtype=torch.float32),
                             steps=300, lr=1e-2, delta=cfg.delta, code_sigma=cfg.code_sigma, z0=mean))  # fmt: skip
    zs = torch.stack(zs)
    with torch.no_grad():
        for name in ("gaussian", "flow"):
            tr_ll = float(priors[name].log_prob(t.codes).mean())
            ho_ll = float(priors[name].log_prob(zs).mean())
            print(f"  {name:8s} code log-likelihood (nats / code, D={cfg.latent_dim}): training {tr_ll:8.2f}  "
                  f"held-out {ho_ll:8.2f}")
    if picture is not None:
        _picture(picture, hv[n_val], hf, [meshes["gaussian"], meshes["flow"], mm], t)


def occnet_bench(run: Path, n_test: int, n_val: int, view_size: int, resolution: int, noise: float) -> None:
    """The one-view completion benchmark of an OccNet run over Anny bodies (see the module docstring)."""
    from human3d.errors import InvalidInputError
    from human3d.implicit.completion import chamfer_to_mesh, depth_view
    from human3d.implicit.occnet_shapes import OccNetShapeTrainer
    from human3d.implicit.shapes import anny_bodies

    t = OccNetShapeTrainer.from_run(run)
    cfg = t.config
    if cfg.family != "anny":
        raise SystemExit(f"--occnet: '{run}' is a {cfg.family} run; the benchmark needs an Anny run")
    print(f"OccNet run {run}: {t.n_shapes} bodies ({cfg.poses} poses) x {cfg.views_per_shape} views, code "
          f"{cfg.c_dim}, decoder {cfg.n_layers}x{cfg.hidden}, {t.step} steps, {t.elapsed / 60:.1f} training minutes "
          f"({cfg.run.budget_clock} clock)", flush=True)
    _, hv, hf = anny_bodies(n_val + n_test, seed=cfg.run.seed + 10_007, poses=cfg.poses,
                            child_fraction=cfg.child_fraction)  # fmt: skip
    def cd_or_nan(fn, k):  # an undertrained network may have no 0.5 level set (an empty mesh): NaN
        try:
            m = fn()
        except InvalidInputError:
            return float("nan")
        return chamfer_to_mesh(m.vertices, m.faces, hv[k], hf)

    cds, cd_base, cpu = [], [], 0.0
    for k in range(n_val, n_val + n_test):  # the test bodies of shape_bench (after its validation bodies)
        v = depth_view(hv[k], hf, size=view_size, yaw=30.0, elevation=10.0, noise=noise, seed=k)
        t0 = time.process_time()
        cds.append(cd_or_nan(lambda: t.complete(v.points, resolution), k))  # noqa: B023
        cpu += time.process_time() - t0  # includes the metric's 30k samples (~0.1 s)
        cd_base.append(cd_or_nan(lambda: t.shape_mesh(None, resolution), k))
        print(f"  body {k - n_val}: occnet {100 * cds[-1]:.2f}  mean code {100 * cd_base[-1]:.2f}", flush=True)
    print(f"held-out bodies: {n_test}; one depth view {view_size}x{view_size} px (noise {noise * 1000:g} mm), MISE "
          f"{resolution}^3; Chamfer-L1 in cm")
    print(f"  {'occnet (1 pass)':20s} {_stats(cds)}")
    print(f"  {'occnet mean code':20s} {_stats(cd_base)}")
    print(f"  {cpu / n_test:.2f} CPU s per OccNet completion (forward pass + MISE + the metric)")


def _picture(path: Path, true_v, true_f, meshes, trainer) -> None:
    """One strip: the held-out body, its completions (Gaussian, flow), the mean shape, then 3 flow samples (front
    view, Lambert shading, human3d's rasterizer)."""
    import cv2

    from human3d.geometry.cameras import Cameras, look_at, make_intrinsics
    from human3d.io_utils import atomic_path
    from human3d.render.rasterizer import headlight_direction, pixel_normals, rasterize_mesh, shade_lambert

    samples = trainer.code_prior("flow").sample(3, generator=torch.Generator().manual_seed(1))
    parts = [(np.asarray(true_v), np.asarray(true_f))] + [(m.vertices, m.faces) for m in meshes]
    parts += [(m.vertices, m.faces) for m in (trainer.extract(z, 128) for z in samples)]
    vs, fs, off = [], [], 0
    for i, (v, f) in enumerate(parts):
        v = np.asarray(v, np.float64) - [np.asarray(v)[:, 0].mean(), 0, 0] + [1.2 * i, 0, 0]
        vs.append(v), fs.append(np.asarray(f) + off)
        off += len(v)
    v = torch.tensor(np.concatenate(vs), dtype=torch.float32)
    f = torch.tensor(np.concatenate(fs), dtype=torch.int64)
    lo, hi = v.min(0).values, v.max(0).values
    c, d, H = 0.5 * (lo + hi), 8.0, 360  # camera 8 m in front (+Z), looking at the strip's centre
    focal = 0.9 * H * d / float(hi[1] - lo[1])
    W = int(focal * float(hi[0] - lo[0]) / d / 0.95) // 4 * 4
    K = make_intrinsics(focal, focal, W / 2, H / 2, batch_size=1)
    cam = Cameras(K, look_at((c + torch.tensor([0.0, 0.0, d]))[None], c[None]), W, H)
    frag = rasterize_mesh(v[None], f, cam)
    img = shade_lambert(frag, pixel_normals(frag, v[None], f), headlight_direction(cam))[0]
    rgb = (img[..., :3] + (1 - img[..., 3:])).clamp(0, 1).numpy()
    with atomic_path(path, suffix=".png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    print(f"picture: {path} (held-out body | completed, Gaussian prior | completed, flow prior | mean shape | 3 flow "
          "samples)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=Path, default=None, help="benchmark this DeepSDF run (Anny) instead")
    ap.add_argument("--occnet", type=Path, default=None, help="also benchmark this OccNet run (Anny)")
    ap.add_argument("--n-test", type=int, default=8, help="held-out test bodies (--shapes)")
    ap.add_argument("--n-val", type=int, default=2, help="validation bodies for the prior weight (--shapes)")
    ap.add_argument("--weights", type=float, nargs="+", default=[1e-5, 1e-4, 1e-3], help="prior weights tried")
    ap.add_argument("--steps", type=int, default=200, help="completion Adam steps (--shapes)")
    ap.add_argument("--view-size", type=int, default=96, help="depth image side in pixels (--shapes)")
    ap.add_argument("--noise", type=float, default=0.0, help="depth noise std in metres (--shapes)")
    ap.add_argument("--resolution", type=int, default=128, help="MISE resolution of completions (--shapes)")
    ap.add_argument("--picture", type=Path, default=None, help="write a PNG strip of completions and samples")
    ap.add_argument("--minutes", type=float, default=3.0, help="CPU minutes per fit (one thread)")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--meshes", nargs="+", default=list(MESHES), choices=list(MESHES))
    ap.add_argument("--methods", nargs="+", default=["hashsdf", "igr"], choices=["hashsdf", "igr"])
    ap.add_argument("--no-timings", action="store_true", help="skip the MISE vs dense timings")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.shapes is not None:
        shape_bench(args.shapes, args.n_test, args.n_val, args.weights, args.steps, args.view_size, args.resolution,
                    args.noise, args.picture)
    if args.occnet is not None:
        occnet_bench(args.occnet, args.n_test, args.n_val, args.view_size, args.resolution, args.noise)
    if args.shapes is not None or args.occnet is not None:
        return
    root = shared_data_dir() / "meshes_watertight"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        last_run = None
        for name in args.meshes:
            for method in args.methods:
                out = Path(tmp) / f"{name}-{method}"
                r = fit_one(root / MESHES[name], method, args.minutes, args.points, out)
                last_run = out
                rows.append((name, method, r))
                print(f"{name:10s} {method:8s} steps {r['steps']:5d}  cpu {r['cpu_s'] / 60:5.2f} min  "
                      f"Chamfer-L1 {r['chamfer_l1']:.4g} ({100 * r['chamfer_l1_rel']:.3f} % diag)  "
                      f"NC {r['normal_consistency']:.4f}  F@1% {r['fscore']:.4f}  IoU {r['iou']:.4f}", flush=True)
        if rows:
            rel = np.array([r["chamfer_l1_rel"] for *_, r in rows])
            nc = np.array([r["normal_consistency"] for *_, r in rows])
            print(f"Chamfer-L1 / diag: mean {100 * rel.mean():.3f} %, median {100 * np.median(rel):.3f} %, "
                  f"worst {100 * rel.max():.3f} %;  NC mean {nc.mean():.4f}, worst {nc.min():.4f}")
            goal = [(n, m) for n, m, r in rows if r["chamfer_l1_rel"] <= 0.005 and r["normal_consistency"] >= 0.95]
            print(f"goal (Chamfer-L1 <= 0.5 % diag and NC >= 0.95 in {args.minutes:g} CPU min): "
                  f"{len(goal)}/{len(rows)} {goal}")
        if not args.no_timings and last_run is not None:
            torch.set_num_threads(2)
            for res, tm, td, ne, nd in extraction_timings(last_run):
                print(f"extraction {res}^3 (2 threads): MISE {tm:.2f} s ({ne} evaluations), dense {td:.2f} s "
                      f"({nd} evaluations)")


if __name__ == "__main__":
    main()
