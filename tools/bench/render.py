"""Benchmark the torch mesh renderers on a ~27k-face body.

    ANNY_CACHE_DIR=/work/anny_cache .venv/bin/python tools/bench/render.py [--mesh anny|sphere|FILE.obj]
        [--repeats 5] [--threads N]

Prints ms/frame (median and best wall clock, best process CPU time, of ``--repeats`` runs) for
* the hard z-buffer rasterizer (``rasterize_mesh``) at 256^2 and 512^2, plus shading (normals + Lambert);
* the soft renderer (``render_soft_silhouette``) at 128^2 and 256^2: forward and forward+backward, silhouette
  only and with depth, with and without back-face culling.

The mesh is the default Anny body (27,420 faces) framed head to toe; ``sphere`` is a 27k-face UV sphere that
needs no model files. No reference implementation runs here (pytorch3d / nvdiffrast are not installable on
these machines), so the figures stand alone; ``tests/render/test_render.py`` checks correctness against analytic
oracles.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from human3d.geometry import Cameras, intrinsics_from_fov, look_at
from human3d.render import pixel_normals, rasterize_mesh, render_soft_silhouette, shade_lambert


def load_mesh(kind: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    if kind == "anny":
        try:
            from human3d.body import load_body_model

            model = load_body_model("anny", skinning="lbs")
            out = model(model.default_params())
            return out.vertices.detach(), out.faces, "Anny default body"
        except Exception as exc:  # no cache / anny unavailable: fall back to the sphere
            print(f"(Anny unavailable: {exc}; using a sphere)")
            kind = "sphere"
    if kind == "sphere":
        import trimesh

        m = trimesh.creation.uv_sphere(radius=0.5, count=[118, 118])
        v = torch.tensor(m.vertices, dtype=torch.float32) * torch.tensor([0.5, 1.7, 0.4])
        return v[None], torch.tensor(m.faces), "UV sphere (ellipsoid, body-sized)"
    import trimesh

    m = trimesh.load(kind, force="mesh", process=False)
    v = torch.tensor(m.vertices, dtype=torch.float32)
    v = (v - v.mean(0)) / (v.max(0).values - v.min(0).values).max() * 1.7
    return v[None], torch.tensor(m.faces), kind


def camera_for(vertices: torch.Tensor, size: int) -> Cameras:
    """A camera 3.2 m in front (+z) of the mesh centre, framing its height."""
    lo, hi = vertices[0].min(0).values, vertices[0].max(0).values
    centre = 0.5 * (lo + hi)
    eye = centre + torch.tensor([0.0, 0.0, 3.2])
    fov = 2.0 * torch.atan(0.6 * (hi - lo).max() / 3.2).item()
    return Cameras(intrinsics_from_fov(fov, size, size), look_at(eye[None], centre[None]), size, size)


def timeit(fn, repeats: int) -> tuple[float, float, float]:
    """(median wall ms, best wall ms, best CPU ms of this process). On a shared, oversubscribed machine the CPU
    time is the steadier figure; with one thread it approximates the wall time on an idle core."""
    fn()  # warm-up
    ts, cs = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return statistics.median(ts) * 1e3, min(ts) * 1e3, min(cs) * 1e3


def bench_render(mesh: str = "anny", repeats: int = 5, soft: bool = True) -> list[tuple]:
    """Rows (label, pass, median wall ms, best wall ms, best CPU ms, note) for the hard and soft renderers."""
    verts, faces, name = load_mesh(mesh)
    print(f"mesh: {name}, {verts.shape[1]} vertices, {faces.shape[0]} faces; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    rows = []

    for size in (256, 512):
        cams = camera_for(verts, size)
        frags = rasterize_mesh(verts, faces, cams)
        cov = frags.mask.float().mean().item()
        med, best, cpu = timeit(lambda: rasterize_mesh(verts, faces, cams), repeats)
        rows.append((f"hard rasterize {size}^2", "fwd", med, best, cpu, f"coverage {cov:.1%}"))

        def shade():
            fr = rasterize_mesh(verts, faces, cams)
            shade_lambert(fr, pixel_normals(fr, verts, faces))

        med, best, cpu = timeit(shade, repeats)
        rows.append((f"hard + normals + Lambert {size}^2", "fwd", med, best, cpu, ""))

    for size in (128, 256) if soft else ():
        cams = camera_for(verts, size)
        for cull in (False, True):
            for depth in (False, True):
                v = verts.clone().requires_grad_(True)
                kw = dict(cull_backfaces=cull, compute_depth=depth)

                def fwd():
                    with torch.no_grad():
                        render_soft_silhouette(v, faces, cams, **kw)

                def fwd_bwd():
                    out = render_soft_silhouette(v, faces, cams, **kw)
                    loss = out.silhouette.sum() + (out.depth.sum() if depth else 0.0)
                    loss.backward()

                label = f"soft {'sil+depth' if depth else 'silhouette'} {size}^2{' cull' if cull else ''}"
                med, best, cpu = timeit(fwd, repeats)
                rows.append((label, "fwd", med, best, cpu, "sigma=0.5 px^2, eps=1e-3"))
                med, best, cpu = timeit(fwd_bwd, repeats)
                rows.append((label, "fwd+bwd", med, best, cpu, f"{1e3 / med:.1f} it/s wall, {1e3 / cpu:.1f} it/s cpu"))
    return rows


def format_render_rows(rows: list[tuple]) -> str:
    w = max(len(r[0]) for r in rows)
    lines = [f"{'renderer':<{w}}  {'pass':<8} {'median ms':>10} {'best ms':>9} {'cpu ms':>8}  note"]
    for label, kind, med, best, cpu, note in rows:
        lines.append(f"{label:<{w}}  {kind:<8} {med:>10.1f} {best:>9.1f} {cpu:>8.1f}  {note}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mesh", default="anny", help="anny (default), sphere, or a mesh file")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(format_render_rows(bench_render(args.mesh, args.repeats)))


if __name__ == "__main__":
    main()
