"""Benchmark SMPLify's silhouette term (Anny): fits with and without ground-truth person masks on synthetic mocap
people (``human3d.fitting.synthetic.make_synthetic_set``: CMU clip 131_03 held out of the priors, random shapes,
1000x1000 px, f = 1200 px), in two keypoint settings: "standard" (2 px noise, 20% keypoints dropped) and "hard"
(5 px noise, 40% dropped).

    python tools/bench/fit_silhouette.py [--n 16] [--seeds 0] [--settings standard,hard] [--variants none,mask,...]

The masks are the ground-truth meshes rendered with the hard rasterizer (``human3d.render.rasterize_mesh``) at full
resolution. Per variant it prints, averaged over all persons: PA-MPJPE and MPJPE (root = hip midpoint) over the
COCO-17 3D keypoints, PA-PVE (per-vertex error after Procrustes with scale) and PVE (root-aligned), the silhouette
IoU of the fitted mesh vs the GT mask at full resolution, the mean absolute phenotype error (Anny's six phenotypes
in [0, 1]), the reprojection error and the process-CPU seconds per person (batch ``--n``). Results are written to
``tools/bench/results/fit_silhouette.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Running as a script puts tools/bench first on sys.path, where tools/bench/generative.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from human3d.body import load_body_model  # noqa: E402
from human3d.fitting import SMPLifyConfig, smplify  # noqa: E402
from human3d.fitting.synthetic import make_synthetic_set  # noqa: E402
from human3d.geometry.cameras import Cameras  # noqa: E402
from human3d.io_utils import atomic_write_text  # noqa: E402
from human3d.metrics import mpjpe, pa_mpjpe  # noqa: E402
from human3d.render import rasterize_mesh  # noqa: E402

SETTINGS = {"standard": {"noise_px": 2.0, "drop": 0.2}, "hard": {"noise_px": 5.0, "drop": 0.4}}
# variant -> (use masks, SMPLifyConfig overrides)
VARIANTS = {
    "none": (False, {}),  # keypoints only
    "mask": (True, {}),  # the defaults: chamfer, weight 100, on after 30% of stage 2
    "mask w300": (True, {"silhouette_weight": 300.0}),
    "mask w1000": (True, {"silhouette_weight": 1000.0}),
    "mask from start": (True, {"silhouette_start": 0.0}),
    # the earlier term: 1 - soft IoU of the soft rasterizer (sigma 1 px^2, 96 px), weight 2, on from the start
    "soft_iou": (True, {"silhouette_loss": "soft_iou", "silhouette_weight": 2.0, "silhouette_size": 96,
                        "silhouette_start": 0.0}),
}


def masks_of(model, params, K, W, H) -> torch.Tensor:
    """Hard-rasterized silhouettes [B, H, W] (bool) of ``params`` seen by intrinsics K (identity extrinsics)."""
    with torch.no_grad():
        v = model(params).vertices
    cams = Cameras(K, torch.eye(4).expand(K.shape[0], 4, 4), W, H)
    return rasterize_mesh(v, model.faces, cams, cull_backfaces=True).mask


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1).float(), b.flatten(1).float()
    return (a * b).sum(-1) / (a + b - a * b).sum(-1).clamp_min(1)


def evaluate(model, res, d, gt_masks) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out, gt = model(res.params), model(d.params)
    root = lambda X: X - X[:, 11:13].mean(1, keepdim=True)  # noqa: E731 - hip midpoint of COCO-17
    X, Y = out.keypoints["coco17"], d.keypoints3d
    rootv = lambda V, X: V - X[:, 11:13].mean(1, keepdim=True)  # noqa: E731
    return {
        "pa_mpjpe_mm": pa_mpjpe(X, Y) * 1000,
        "mpjpe_mm": mpjpe(root(X), root(Y)) * 1000,
        "pa_pve_mm": pa_mpjpe(out.vertices, gt.vertices) * 1000,
        "pve_mm": mpjpe(rootv(out.vertices, X), rootv(gt.vertices, Y)) * 1000,
        "iou": iou(masks_of(model, res.params, d.K, d.width, d.height), gt_masks),
        "phenotype_err": (res.params["phenotypes"] - d.params["phenotypes"]).abs().mean(-1),
        "reproj_px": res.reprojection_error_px,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16, help="persons per synthetic set (one batch)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the synthetic sets (results pooled)")
    ap.add_argument("--settings", default="standard,hard", help=f"keypoint settings: {','.join(SETTINGS)}")
    ap.add_argument("--variants", default="none,mask,mask w300,mask w1000",
                    help=f"comma-separated fits to compare: {', '.join(VARIANTS)}")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fit_silhouette.json"),
                    help="JSON file for the results ('' = do not write)")
    args = ap.parse_args()

    model = load_body_model("anny")
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = SMPLifyConfig()
    print(f"SMPLify on Anny (prior auto), {len(seeds)} x {args.n} synthetic persons per setting, "
          f"body_iters={cfg.body_iters}, silhouette_size={cfg.silhouette_size}, "
          f"silhouette_weight={cfg.silhouette_weight}")
    results = {"n": args.n, "seeds": seeds, "config": {k: getattr(cfg, k) for k in (
        "body_iters", "silhouette_weight", "silhouette_size")}, "rows": []}  # fmt: skip
    header = ("| setting | variant | PA-MPJPE mm | MPJPE mm | PA-PVE mm | PVE mm | IoU | phenotype err | "
              "reproj px | CPU s / person |")
    print("\n" + header + "\n" + "|---" * 10 + "|", flush=True)
    for setting in args.settings.split(","):
        sets = [make_synthetic_set(model, args.n, seed=s, **SETTINGS[setting]) for s in seeds]
        gts = [masks_of(model, d.params, d.K, d.width, d.height) for d in sets]
        for variant in args.variants.split(","):
            use_mask, over = VARIANTS[variant]
            c = cfg.replace(**over)
            acc: dict[str, list] = {}
            cpu = 0.0
            for d, gm in zip(sets, gts):
                t = time.process_time()
                res = smplify(model, d.keypoints2d, d.K, config=c, image_size=(d.width, d.height),
                              masks=gm.float() if use_mask else None)  # fmt: skip
                cpu += time.process_time() - t
                for k, v in evaluate(model, res, d, gm).items():
                    acc.setdefault(k, []).append(v)
            m = {k: float(torch.cat(v).float().mean()) for k, v in acc.items()}
            m["cpu_s_per_person"] = cpu / (len(sets) * args.n)
            results["rows"].append({"setting": setting, "variant": variant, "overrides": over, **m})
            print(f"| {setting} | {variant} | {m['pa_mpjpe_mm']:.1f} | {m['mpjpe_mm']:.1f} | {m['pa_pve_mm']:.1f} | "
                  f"{m['pve_mm']:.1f} | {m['iou']:.3f} | {m['phenotype_err']:.3f} | {m['reproj_px']:.2f} | "
                  f"{m['cpu_s_per_person']:.2f} |", flush=True)  # fmt: skip
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
