"""Body-model forward / forward+backward timings, side by side with the reference implementation.

SMPL section: human3d's SMPL vs smplx on the same model file (a synthetic, structurally valid SMPL file from
``human3d.synth.smpl_files``, or your official file with ``--smpl-model PATH``), batch 1 and 64. Each row gives the
median time of interleaved repetitions (ours and the reference alternate, so background load hits both alike),
the speed-up (reference / ours) and the largest vertex difference.

    python tools/bench/body_forward.py [--threads 2] [--repeats 20] [--smpl-model SMPL_NEUTRAL.pkl]

Other sections add a ``bench_<model>() -> list[dict]`` with the same row keys and register it in ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Row keys (every section returns a list of dicts with these; missing values print as "-").
COLUMNS = [
    ("model", "model", "{}"),
    ("batch", "B", "{}"),
    ("forward_ms", "fwd ms", "{:.2f}"),
    ("forward_backward_ms", "fwd+bwd ms", "{:.2f}"),
    ("reference", "reference", "{}"),
    ("ref_forward_ms", "ref fwd ms", "{:.2f}"),
    ("ref_forward_backward_ms", "ref fwd+bwd ms", "{:.2f}"),
    ("speedup_forward", "speed-up fwd", "{:.2f}x"),
    ("speedup_forward_backward", "speed-up fwd+bwd", "{:.2f}x"),
    ("max_abs_diff_m", "max |dv| (m)", "{:.1e}"),
]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median time (ms; wall clock, or process CPU time with ``--clock cpu``) of each function, calling them in
    turn ``repeats`` times."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = _clock()
            f()
            samples[k].append(_clock() - t)
    return {k: 1e3 * statistics.median(v) for k, v in samples.items()}


def _forward_backward(call: Callable[[dict], object], params: dict[str, torch.Tensor]) -> Callable[[], None]:
    def run():
        leaf = {k: v.detach().requires_grad_() for k, v in params.items()}
        out = call(leaf)
        (out.vertices.square().sum() + out.joints.sum()).backward()

    return run


def bench_smpl(model_path: str | None = None, batches=(1, 64), repeats: int = 20) -> list[dict]:
    """human3d SMPL vs smplx.SMPL on the same file: one row per batch size."""
    import smplx

    from human3d.body.smpl import SMPL

    with tempfile.TemporaryDirectory() as tmp:
        if model_path is None:
            from human3d.synth import smpl_files as smpl_synth

            model_path = str(smpl_synth.write_pickle(Path(tmp) / "SMPL_NEUTRAL.pkl", smpl_synth.make_model_data("smpl")))
            label = "SMPL (synthetic file)"
        else:
            label = f"SMPL ({Path(model_path).name})"
        ours = SMPL(model_path)
        ref = smplx.SMPL(model_path)  # smplx reads pickles only
    rows = []
    for B in batches:
        g = torch.Generator().manual_seed(B)
        params = {k: torch.randn(B, *s, generator=g) * 0.4 for k, s in ours.parameter_shapes().items()}

        def ours_call(p):
            return ours(p)

        def ref_call(p):
            return ref(**p)

        with torch.no_grad():
            diff = (ours_call(params).vertices - ref_call(params).vertices).abs().max().item()
            fwd = time_interleaved({"ours": lambda: ours_call(params), "ref": lambda: ref_call(params)}, repeats)
        fb = time_interleaved(
            {"ours": _forward_backward(ours_call, params), "ref": _forward_backward(ref_call, params)}, repeats
        )
        rows.append(
            dict(
                model=label,
                batch=B,
                forward_ms=fwd["ours"],
                forward_backward_ms=fb["ours"],
                reference="smplx " + smplx.__version__ if hasattr(smplx, "__version__") else "smplx",
                ref_forward_ms=fwd["ref"],
                ref_forward_backward_ms=fb["ref"],
                speedup_forward=fwd["ref"] / fwd["ours"],
                speedup_forward_backward=fb["ref"] / fb["ours"],
                max_abs_diff_m=diff,
            )
        )
    return rows


SECTIONS: dict[str, Callable[..., list[dict]]] = {"smpl": bench_smpl}


def format_table(rows: list[dict]) -> str:
    cells = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        cells.append([fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions per function (median reported)")
    parser.add_argument("--smpl-model", default=os.environ.get("SMPL_MODEL_PATH"),
                        help="official SMPL .pkl to use instead of a synthetic file (env SMPL_MODEL_PATH)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time (default); cpu: process CPU time (user+sys of all threads), "
                        "steadier than wall time when other jobs share the CPU")
    parser.add_argument("--sections", default="smpl,anny,render",
                        help="comma list of smpl (vs smplx), anny (each skinning method), render (rasterizer)")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs visible, "
          f"{args.clock} clock, median of {args.repeats} interleaved runs, float32")  # fmt: skip
    sections = args.sections.split(",")
    rows = []
    for name in sections:
        if name == "smpl":
            rows += bench_smpl(args.smpl_model, repeats=args.repeats)
        elif name in SECTIONS:
            rows += SECTIONS[name](repeats=args.repeats)
    if rows:
        print(format_table(rows))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if "anny" in sections:  # Anny through our interface, with each skinning method (tools/bench/body_anny.py)
        from body_anny import bench_anny, format_rows

        print("\nAnny (human3d.body.AnnyBody vs anny's own forward), each skinning method:")
        print(format_rows(bench_anny(repeats=max(3, args.repeats // 4))))
    if "render" in sections:  # rasterizer ms per frame at 256^2 and 512^2 (tools/bench/render.py)
        from render import bench_render, format_render_rows

        print("\nRasterizer on the Anny body (27,420 faces):")
        print(format_render_rows(bench_render("anny", repeats=5, soft=False)))


if __name__ == "__main__":
    main()
