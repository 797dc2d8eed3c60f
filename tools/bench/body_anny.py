"""Benchmark: Anny through human3d's AnnyBody, per skinning method, against anny's own forward.

Times forward and forward+backward (gradients to pose and phenotypes) at B=1 and B=64, random poses and one
random phenotype vector per sample, float32. The reference rows run ``anny.Anny`` directly on the same inputs
(axis-angles -> delta transforms with roma, then its forward), so the difference is the wrapper's overhead
(checks, keypoint regression). "skin only" rows time the skinning step alone (rest vertices and bone
transforms given), the one step in which the methods differ.

    python tools/bench/body_anny.py [--repeats N] [--batch 1 64] [--device cpu]

``bench_anny()`` returns the rows (dicts) for other scripts (tools/bench/body_forward.py prints them too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

METHODS = ("lbs", "warp_lbs")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fns: list, repeats: int, device: torch.device) -> list[tuple[float, float, float]]:
    """(median wall, best wall, median process CPU) ms of each ``fn()``; runs alternate between the fns.

    Alternating keeps the comparison fair on a busy machine; process CPU time (all threads of this process) is
    less sensitive than wall time to other processes sharing the cores.
    """
    for fn in fns:
        fn()  # warm-up (warp JIT, allocator)
    _sync(device)
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, w, c in zip(fns, wall, cpu):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            _sync(device)
            w.append(1e3 * (time.perf_counter() - start))
            c.append(1e3 * (time.process_time() - start_cpu))
    return [(statistics.median(w), min(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def bench_anny(
    batch_sizes=(1, 64),
    methods=METHODS,
    repeats: int | None = None,
    device: str | torch.device | None = None,
    reference: bool = True,
) -> list[dict]:
    """Time AnnyBody (and anny's own forward if ``reference``) for each skinning method and batch size.

    Returns rows ``{"impl", "skinning", "batch", "pass", "ms", "ms_min", "cpu_ms"}`` with ``impl`` "human3d",
    "anny (ref)" or "skin only" (the skinning step alone) and ``pass`` "forward" or "fwd+bwd"; ``ms`` / ``ms_min``
    are the median / best wall time of ``repeats`` runs (default 10 at B<=8, else 3), the implementations' runs
    interleaved; ``cpu_ms`` the median process CPU time (all threads).
    """
    import anny
    import roma

    from human3d.body.anny import ANNY_TO_CANONICAL, AnnyBody

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for method in methods:
        model = AnnyBody(skinning=method, device=device)
        ref = model.anny  # the wrapped anny.Anny module (same dtype / device / skinning)
        assert isinstance(ref, anny.Anny)
        C = torch.tensor(ANNY_TO_CANONICAL, device=device)
        for batch in batch_sizes:
            g = torch.Generator().manual_seed(batch)
            params = {
                "global_orient": torch.randn(batch, 3, generator=g),
                "body_pose": 0.3 * torch.randn(batch, 309, generator=g),
                "phenotypes": 0.05 + 0.9 * torch.rand(batch, 6, generator=g),
                "transl": torch.randn(batch, 3, generator=g),
            }
            params = {k: v.to(device) for k, v in params.items()}
            n = repeats or (10 if batch <= 8 else 3)

            def ours(backward: bool):
                leaves = {k: v.clone().requires_grad_(backward) for k, v in params.items()}
                with torch.set_grad_enabled(backward):
                    out = model(leaves)
                    if backward:
                        out.vertices.sum().backward()

            def theirs(backward: bool):
                pose = torch.cat([params["global_orient"], params["body_pose"]], 1).reshape(batch, -1, 3)
                pose = pose.clone().requires_grad_(backward)
                ph = params["phenotypes"].clone().requires_grad_(backward)
                with torch.set_grad_enabled(backward):
                    deltas = torch.eye(4, device=device).repeat(batch, pose.shape[1], 1, 1)
                    deltas[..., :3, :3] = C.T @ roma.rotvec_to_rotmat(pose) @ C
                    out = ref(deltas, ph)
                    if backward:
                        out["vertices"].sum().backward()

            ph = params["phenotypes"]
            coeffs = ref._get_phenotype_blendshape_coefficients(ph, ph.new_zeros(batch, 0), ph.new_zeros(batch, 0))
            rest = ref.get_rest_vertices(coeffs)  # [B, V, 3]
            noise = torch.randn(batch, ref.bone_count, 4, 4, generator=g).to(device)
            bones = torch.eye(4, device=device) + 0.05 * noise  # [B, J, 4, 4]

            def skin_only(backward: bool):  # the one step the skinning methods differ in
                x, t = rest.clone().requires_grad_(backward), bones.clone().requires_grad_(backward)
                with torch.set_grad_enabled(backward):
                    v = ref.get_skinned_vertices(x, t)
                    if backward:
                        v.sum().backward()

            impls = [("human3d", ours)] + ([("anny (ref)", theirs)] if reference else []) + [("skin only", skin_only)]
            for backward in (False, True):
                fns = [lambda fn=fn: fn(backward) for _, fn in impls]
                for (impl, _), (med, best, cpu) in zip(impls, _time(fns, n, device)):
                    mode = "fwd+bwd" if backward else "forward"
                    rows.append({"impl": impl, "skinning": method, "batch": batch, "pass": mode,
                                 "ms": med, "ms_min": best, "cpu_ms": cpu})  # fmt: skip
    return rows


def format_rows(rows: list[dict]) -> str:
    """A plain-text table of ``bench_anny`` rows."""
    lines = [f"{'impl':<12} {'skinning':<9} {'B':>4} {'pass':<8} {'median ms':>10} {'best ms':>9} {'cpu ms':>9}"]
    for r in rows:
        lines.append(
            f"{r['impl']:<12} {r['skinning']:<9} {r['batch']:>4} {r['pass']:<8} {r['ms']:>10.1f} {r['ms_min']:>9.1f}"
            f" {r['cpu_ms']:>9.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (median reported)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"Anny forward / forward+backward, float32, device={device}, torch threads={torch.get_num_threads()}")
    rows = bench_anny(batch_sizes=tuple(args.batch), repeats=args.repeats, device=device)
    print(format_rows(rows))
    for batch in args.batch:
        for mode in ("forward", "fwd+bwd"):
            t = {
                r["skinning"]: r["ms"]
                for r in rows
                if r["impl"] == "human3d" and r["batch"] == batch and r["pass"] == mode
            }
            best = min(t, key=t.get)
            print(f"B={batch:<3} {mode:<8} fastest (median wall): {best} (lbs/warp = {t['lbs'] / t['warp_lbs']:.2f}x)")


if __name__ == "__main__":
    main()
