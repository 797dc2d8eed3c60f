"""One-shot CUDA verification of human3d's GPU paths (splat rasterizer, gsplat backend, NeRF, splat training, SMPL).

Made for a single short run on a GPU machine; every check runs in its own try/except and prints one
``PASS`` / ``FAIL`` / ``SKIP`` line with its figures, so one failure does not lose the rest. A JSON summary is
rewritten after every check (``OUT/gpu_check.json``). The whole run keeps to ``--budget`` seconds: trainings are
shortened to what is left, and a check that overruns its share is interrupted (SIGALRM) and reported as FAIL.

Checks (names as in the JSON):

1. ``raster_torch``: ``human3d.splat.rasterize(backend="torch")`` on CUDA vs CPU on the same random scene (2k
   Gaussians, 128x128, SH degree 1, 2 cameras): image / alpha max abs diff, fragment counts, relative gradient
   errors; then CUDA forward and forward+backward milliseconds at 400x400 for 10k / 100k Gaussians (the
   ``surface`` / ``volume`` scenes of ``tools/bench/splat.py``; CUDA-synchronised, one warm-up, best of N).
2. ``gsplat_build`` + ``raster_gsplat``: gsplat's CUDA kernels are JIT-compiled (nvcc + ninja) in a separate
   process started at the very beginning, so the build overlaps checks 1, 5, 3 and 4 (torch); it has its own
   timeout (``--gsplat-build-timeout``). By default it builds a copy of the installed package whose kernels are
   instantiated only for 1..17 colour channels (``--gsplat-channels``; ``all`` builds the package as is): the
   same kernel code for our 3/4-channel renders, ~30x less of it to compile. Then ``rasterize(backend="gsplat")``
   vs ``backend="torch"`` on the same CUDA inputs (image / alpha differences, relative gradient differences) and gsplat timings at 10k / 100k.
   Timings taken while the build runs are flagged ``"build_running": true`` in the JSON (CPU contention).
3. ``nerf``: ``human3d.nerf`` preset ``fast`` on lego downscaled to 100x100, ~60 s: val PSNR, steps/s and the
   devices of the model parameters, occupancy grid and training rays.
4. ``splat_torch`` / ``splat_gsplat``: ``human3d.splat`` preset ``fast`` on lego 400x400, ~90 s each: val PSNR on a
   few views, steps/s, Gaussian count, devices; a side-by-side PNG (prediction | ground truth) of one val view.
5. ``smpl``: SMPL forward on CUDA vs CPU with a synthetic model file (``human3d.synth.smpl_files``): max abs diff of
   vertices / joints at B=64 and forward milliseconds on both devices.
6. ``fit``: batched SMPLify on CUDA with the Anny-derived SMPL-format model and synthetic people from the held-out
   mocap clip (both prepared on a machine with Anny: ``--prepare-fit .gpu/data``, which writes
   ``fit_smpl_model.npz`` and ``fit_smpl_set.npz``): wall seconds at batch 32 / 256 / 1024 with the ``simple`` and
   ``flow`` priors, PA-MPJPE and reprojection error, and the same batch-32 fit on the CPU for comparison.

Usage on the GPU machine (wheels of gsplat 1.5.3 / roma, also kornia, kornia_rs, trimesh, carried
in ``.gpu/whl`` (ignored via .git/info/exclude); lego train + 10 val views in ``.gpu/data``; ``carry=[".gpu"]``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=12 TORCH_EXTENSIONS_DIR=/tmp/torch_extensions
    PYTHONUNBUFFERED=1 timeout -k 10 450 python3 tools/gpu_check.py --data .gpu/data/nerf_lego_400 --out $OUT 2>&1 | tee $OUT/log.txt

Dry run on a CPU (tiny settings; the gsplat "build" only imports gsplat, and the gsplat checks run with
``backend="torch"`` to exercise their logic)::

    python tools/gpu_check.py --device cpu --quick --data ../shared/data/nerf_lego_400 --out /tmp/gpu_check

Options: ``--only raster_torch,smpl`` runs a subset; ``--budget`` total seconds (default 420).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# gsplat's JIT build: the same settings in this process and in the build process (a changed arch list would make
# ninja rebuild everything on the first gsplat call here).
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
os.environ.setdefault("MAX_JOBS", "12")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", "/tmp/torch_extensions")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CHECKS = ("raster_torch", "smpl", "fit", "nerf", "splat_torch", "gsplat_build", "raster_gsplat", "splat_gsplat")

T0 = time.perf_counter()
RESULTS: dict = {"env": {}, "checks": {}, "order": []}
ARGS: argparse.Namespace
BUILD: dict = {}  # gsplat build process state


# ----------------------------------------------------------------------------------------------------------------
# bookkeeping
# ----------------------------------------------------------------------------------------------------------------
def elapsed() -> float:
    return time.perf_counter() - T0


def remaining() -> float:
    return ARGS.budget - elapsed()


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f}s] {msg}", flush=True)


def write_json() -> None:
    RESULTS["elapsed_s"] = round(elapsed(), 1)
    out = Path(ARGS.out) / "gpu_check.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(RESULTS, indent=1, default=str))
    os.replace(tmp, out)


class StepTimeout(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: float):
    """Raise StepTimeout in this (main) thread after ``seconds`` (checked between Python bytecodes)."""

    def handler(signum, frame):
        raise StepTimeout(f"step exceeded its {seconds:.0f} s share of the budget")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_check(name: str, fn, limit: float, min_needed: float = 5.0) -> None:
    """Run one check with a time limit; record PASS/FAIL/SKIP and its figures."""
    if ARGS.only and name not in ARGS.only:
        return
    rec: dict = {}
    RESULTS["checks"][name] = rec
    RESULTS["order"].append(name)
    limit = min(limit, remaining())
    if limit < min_needed:
        rec.update(status="SKIP", reason=f"budget: {remaining():.0f} s left")
        log(f"SKIP {name}: {rec['reason']}")
        write_json()
        return
    t = time.perf_counter()
    log(f"---- {name} (limit {limit:.0f} s)")
    try:
        with alarm(limit):
            status = fn(rec)
        rec["status"] = status or "PASS"
    except SkipCheck as e:
        rec.update(status="SKIP", reason=str(e))
    except BaseException as e:  # noqa: BLE001 - report everything, go on with the next check
        if isinstance(e, KeyboardInterrupt):
            raise
        rec.update(status="FAIL", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:])
        traceback.print_exc()
    rec["seconds"] = round(time.perf_counter() - t, 1)
    figures = {k: v for k, v in rec.items() if k not in ("status", "traceback", "seconds") and not isinstance(v, (dict, list))}
    log(f"{rec['status']} {name} ({rec['seconds']} s) {json.dumps(figures, default=str)}")
    if ARGS.device == "cuda":
        torch.cuda.empty_cache()
    write_json()


class SkipCheck(Exception):
    pass


def sync() -> None:
    if ARGS.device == "cuda":
        torch.cuda.synchronize()


def timeit_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    sync()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 2)


def build_running() -> bool:
    p = BUILD.get("proc")
    return p is not None and p.poll() is None


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ----------------------------------------------------------------------------------------------------------------
# scenes
# ----------------------------------------------------------------------------------------------------------------
def random_scene(n: int, n_cams: int, res: int, sh_degree: int, seed: int = 0) -> dict:
    """Random Gaussians in a 1.2 m box seen by ``n_cams`` cameras at 3 m (CPU float32 tensors)."""
    from human3d.geometry.cameras import intrinsics_from_fov, look_at

    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    means = (torch.rand(n, 3, generator=g) - 0.5) * 1.2
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.3 + math.log(0.03))
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    sh = torch.randn(n, k, 3, generator=g) * 0.3
    ang = torch.linspace(0, 2 * math.pi, n_cams + 1)[:-1] + 0.3
    eyes = torch.stack([3 * torch.cos(ang), 3 * torch.sin(ang), torch.full_like(ang, 0.8)], -1)
    viewmats = look_at(eyes, torch.zeros(n_cams, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(n_cams, 3))
    Ks = intrinsics_from_fov(0.6911, res, res).expand(n_cams, 3, 3).contiguous()
    weight = torch.rand(n_cams, res, res, 3, generator=g)
    weight_a = torch.rand(n_cams, res, res, 1, generator=g)
    return dict(means=means, quats=quats, scales=scales, opacities=opac, colors=sh, viewmats=viewmats, Ks=Ks,
                width=res, height=res, sh_degree=sh_degree, weight=weight, weight_a=weight_a)  # fmt: skip


PARAMS = ("means", "quats", "scales", "opacities", "colors")


def render_with_grads(scene: dict, device: str, backend: str):
    """Render + backward of a fixed weighted sum -> (rgb, alpha, meta, {param: grad}) on ``device``."""
    from human3d.splat import rasterize

    leaves = {k: scene[k].to(device).clone().requires_grad_(True) for k in PARAMS}
    rgb, alpha, meta = rasterize(
        leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"], leaves["colors"],
        scene["viewmats"].to(device), scene["Ks"].to(device), scene["width"], scene["height"],
        sh_degree=scene["sh_degree"], background=torch.ones(3, device=device), backend=backend,
    )  # fmt: skip
    loss = (rgb * scene["weight"].to(device)).sum() + (alpha * scene["weight_a"].to(device)).sum()
    loss.backward()
    sync()
    return rgb.detach(), alpha.detach(), meta, {k: v.grad for k, v in leaves.items()}


def bench_scene(kind: str, n: int):
    """The ``tools/bench/splat.py`` scenes (``surface`` / ``volume``), for figures comparable with the CPU bench."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_splat", ROOT / "tools" / "bench" / "splat.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._scene(kind, n)


def raster_timings(backend: str, rec: dict, sizes, res: int, repeats: int) -> None:
    from human3d.geometry.cameras import intrinsics_from_fov, look_at
    from human3d.splat import rasterize

    dev = ARGS.device
    viewmats = look_at(torch.tensor([[0.0, -4.0, 1.5]]), torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]])).to(dev)
    Ks = intrinsics_from_fov(0.6911, res, res).reshape(1, 3, 3).to(dev)
    bg = torch.ones(3, device=dev)
    rows = []
    rec["timings"] = rows  # filled as it goes (kept if a later size is interrupted)
    for kind in ("surface", "volume"):
        for n in sizes:
            g = bench_scene(kind, n).to(dev)
            weight = torch.rand(1, res, res, 3, device=dev)

            def fwd():
                with torch.no_grad():
                    return rasterize(g.means, g.quats, g.scales, g.opacities, g.sh, viewmats, Ks, res, res,
                                     sh_degree=3, background=bg, backend=backend)  # fmt: skip

            def fwd_bwd():
                g.zero_grad(set_to_none=True)
                rc, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.sh, viewmats, Ks, res, res,
                                     sh_degree=3, background=bg, backend=backend)  # fmt: skip
                (rc * weight).sum().backward()

            busy = build_running()
            row = {"scene": kind, "gaussians": n, "res": res, "forward_ms": timeit_ms(fwd, repeats),
                   "forward_backward_ms": timeit_ms(fwd_bwd, repeats), "build_running": busy}  # fmt: skip
            meta = fwd()[2]
            row["fragments"] = meta.get("n_fragments")
            rows.append(row)
            log(f"  {backend:6s} {kind:7s} N={n:>7d} {res}x{res}: forward {row['forward_ms']:8.2f} ms, "
                f"fwd+bwd {row['forward_backward_ms']:8.2f} ms  (fragments {row['fragments']}, build running {busy})")


# ----------------------------------------------------------------------------------------------------------------
# 1. torch rasterizer: CUDA vs CPU, timings
# ----------------------------------------------------------------------------------------------------------------
def check_raster_torch(rec: dict):
    n, res = (400, 48) if ARGS.quick else (2000, 128)
    scene = random_scene(n, 2, res, sh_degree=1)
    ref = render_with_grads(scene, "cpu", "torch")
    out = render_with_grads(scene, ARGS.device, "torch")
    rec["gaussians"], rec["res"] = n, res
    d_rgb, d_a = (out[0].cpu() - ref[0]).abs(), (out[1].cpu() - ref[1]).abs()
    rec["rgb_max_abs_diff"], rec["rgb_mean_abs_diff"] = float(d_rgb.max()), float(d_rgb.mean())
    rec["alpha_max_abs_diff"], rec["alpha_mean_abs_diff"] = float(d_a.max()), float(d_a.mean())
    rec["pixels_diff_over_1e4"] = int((d_rgb.amax(-1) > 1e-4).sum())
    rec["alpha_mean"] = float(ref[1].mean())
    rec["fragments_cpu"], rec["fragments_dev"] = ref[2]["n_fragments"], out[2]["n_fragments"]
    rec["grad_rel_err"] = {k: rel_err(out[3][k], ref[3][k]) for k in PARAMS}
    rec["means2d_grad_rel_err"] = rel_err(out[2]["means2d"].grad, ref[2]["means2d"].grad)
    rec["output_device"] = str(out[0].device)
    worst = max(rec["grad_rel_err"].values())
    rec["grad_rel_err_max"] = worst
    log(f"  CPU vs {ARGS.device}: rgb {rec['rgb_max_abs_diff']:.2e}, alpha {rec['alpha_max_abs_diff']:.2e}, "
        f"grad rel err max {worst:.2e} {rec['grad_rel_err']}")
    # different float rounding (CUDA exp/sqrt, atomics in index_add) can flip a fragment sitting exactly on the
    # 1/255 alpha or early-termination boundary: allow a few such pixels, not a systematic difference
    nfr = rec["fragments_cpu"]
    ok = rec["rgb_mean_abs_diff"] < 1e-5 and rec["alpha_mean_abs_diff"] < 1e-5 and worst < 1e-3
    ok = ok and rec["rgb_max_abs_diff"] < 5e-3 and rec["pixels_diff_over_1e4"] <= 10
    ok = ok and abs(rec["fragments_dev"] - nfr) <= max(10, 1e-4 * nfr) and rec["alpha_mean"] > 0.05
    sizes = [2000, 10000] if ARGS.quick else [10_000, 100_000]
    timings_guarded("torch", rec, sizes, 64 if ARGS.quick else 400, 1 if ARGS.quick else 5)
    return "PASS" if ok else "FAIL"


def timings_guarded(backend: str, rec: dict, sizes, res: int, repeats: int) -> None:
    """Timings after a correctness check: a failure or timeout here is recorded without failing the check."""
    try:
        raster_timings(backend, rec, sizes, res, repeats)
    except (StepTimeout, RuntimeError) as e:
        rec["timings_error"] = f"{type(e).__name__}: {e}"
        log(f"  timings stopped: {rec['timings_error']}")


# ----------------------------------------------------------------------------------------------------------------
# 2. gsplat: JIT build in a subprocess, then gsplat vs torch
# ----------------------------------------------------------------------------------------------------------------
BUILD_CODE = r"""
import time, torch, gsplat
print("gsplat from", gsplat.__file__, flush=True)
t = time.time()
from gsplat.cuda._backend import _C
print("GSPLAT_BUILD_RESULT", _C is not None, round(time.time() - t, 1), flush=True)
"""


#: colour-channel counts gsplat 1.5 instantiates its rasterization kernels for (unrolled loops: the large ones
#: dominate the JIT build time)
GSPLAT_CDIMS = (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513)


def trim_gsplat_source(keep: set) -> dict:
    """Copy the installed gsplat package to ``/tmp/gsplat_trim`` and drop the kernel instantiations (and their
    dispatch cases) for channel counts not in ``keep``; put the copy first on ``sys.path`` / ``PYTHONPATH``.

    Only the list of compiled template instances changes (each ``__INS__(N)`` / ``__LAUNCH_KERNEL__(N)`` line of
    ``csrc/*.cu`` / ``*.cpp``): the kernels for the kept counts are the same code, and any other count reaches
    gsplat's own "Unsupported number of channels" error. Our renders use 3 (RGB) or 4 (RGB+D) channels.
    """
    import importlib.util
    import re
    import shutil

    spec = importlib.util.find_spec("gsplat")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise RuntimeError("gsplat is not installed")
    src = Path(spec.origin).parent
    root = Path("/tmp/gsplat_trim")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(src, root / "gsplat", ignore=shutil.ignore_patterns("doc", "test", "__pycache__"))
    pat = re.compile(r"^\s*(__INS__|__LAUNCH_KERNEL__)\((\d+)\)\s*$")
    removed = 0
    for f in list((root / "gsplat" / "cuda" / "csrc").glob("*.cu")) + list((root / "gsplat" / "cuda" / "csrc").glob("*.cpp")):
        lines = f.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not ((m := pat.match(ln)) and int(m.group(2)) not in keep)]
        removed += len(lines) - len(kept)
        if len(kept) != len(lines):
            f.write_text("".join(kept))
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {"source": str(src), "copy": str(root / "gsplat"), "kept_channel_counts": sorted(keep),
            "removed_lines": removed}  # fmt: skip


def start_gsplat_build() -> None:
    if (ARGS.only and not {"gsplat_build", "raster_gsplat", "splat_gsplat"} & set(ARGS.only)) or ARGS.no_gsplat:
        return
    if ARGS.gsplat_channels != "all":
        keep = {int(c) for c in ARGS.gsplat_channels.split(",") if c}
        try:
            BUILD["trim"] = trim_gsplat_source(keep)
            log(f"gsplat source trimmed: {BUILD['trim']}")
        except Exception as e:  # noqa: BLE001 - fall back to the full build
            BUILD["trim"] = {"error": f"{type(e).__name__}: {e}"}
            log(f"gsplat trim failed ({e}); building the installed package as is")
    log_path = Path(ARGS.out) / "gsplat_build.log"
    if ARGS.device == "cuda":
        code = BUILD_CODE
    else:  # dry run: exercise the process plumbing only (a JIT build needs CUDA)
        code = ("import gsplat; print('gsplat from', gsplat.__file__); "
                "print('GSPLAT_BUILD_RESULT', False, 0.0, 'dry run: import only', flush=True)")
    fh = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1", VERBOSE=os.environ.get("VERBOSE", "0"))
    BUILD.update(proc=subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, cwd=str(ROOT)),
                 log=log_path, fh=fh, t0=time.perf_counter())  # fmt: skip
    log(f"gsplat build started (pid {BUILD['proc'].pid}, TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}, "
        f"MAX_JOBS={os.environ['MAX_JOBS']}, TORCH_EXTENSIONS_DIR={os.environ['TORCH_EXTENSIONS_DIR']}); log: {log_path}")


def stop_build() -> None:
    p = BUILD.get("proc")
    if p is not None and p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # the build's own session: python + ninja + nvcc
        p.wait()


def check_gsplat_build(rec: dict):
    if "proc" not in BUILD:
        raise SkipCheck("gsplat build not started")
    p = BUILD["proc"]
    deadline = BUILD["t0"] + ARGS.gsplat_build_timeout
    while p.poll() is None and time.perf_counter() < deadline:
        time.sleep(1.0)
    rec["build_timeout_s"] = ARGS.gsplat_build_timeout
    if p.poll() is None:
        stop_build()
        rec["wall_s"] = round(time.perf_counter() - BUILD["t0"], 1)
        BUILD["ok"] = False
        raise TimeoutError(f"gsplat JIT build still running after {ARGS.gsplat_build_timeout} s: killed")
    BUILD["fh"].flush()
    text = Path(BUILD["log"]).read_text(errors="replace")
    rec["wall_s"] = round(time.perf_counter() - BUILD["t0"], 1)
    rec["returncode"] = p.returncode
    rec["log_tail"] = text[-1500:]
    line = [ln for ln in text.splitlines() if ln.startswith("GSPLAT_BUILD_RESULT")]
    BUILD["ok"] = p.returncode == 0 and bool(line) and line[-1].split()[1] == "True"
    if ARGS.device != "cuda":  # dry run: the gsplat checks below then run with backend="torch" (logic only)
        BUILD["ok"] = p.returncode == 0 and bool(line)
        raise SkipCheck(f"no CUDA: import-only dry run, rc={p.returncode}, {line[-1] if line else 'no result line'}")
    if not BUILD["ok"]:
        raise RuntimeError(f"gsplat build failed (rc {p.returncode}); see gsplat_build.log:\n{text[-1500:]}")
    rec["build_s"] = float(line[-1].split()[2])
    import gsplat

    rec["gsplat_version"] = gsplat.__version__
    rec["gsplat_file"] = gsplat.__file__
    rec["trim"] = BUILD.get("trim", "none (full build)")
    from gsplat.cuda._backend import _C  # loads the built module (no rebuild when the flags match)

    rec["loaded"] = _C is not None
    return "PASS" if _C is not None else "FAIL"


def gsplat_backend() -> str:
    """"gsplat" on CUDA; "torch" in a CPU dry run (exercises the checks' logic only)."""
    return "gsplat" if ARGS.device == "cuda" else "torch"


def check_raster_gsplat(rec: dict):
    if not BUILD.get("ok"):
        raise SkipCheck("gsplat not built")
    n, res = (400, 48) if ARGS.quick else (2000, 128)
    scene = random_scene(n, 2, res, sh_degree=1)
    ref = render_with_grads(scene, ARGS.device, "torch")
    out = render_with_grads(scene, ARGS.device, gsplat_backend())
    rec["backend"] = gsplat_backend()
    d_rgb = (out[0] - ref[0]).abs()
    d_a = (out[1] - ref[1]).abs()
    rec.update(gaussians=n, res=res, rgb_max_abs_diff=float(d_rgb.max()), rgb_mean_abs_diff=float(d_rgb.mean()),
               alpha_max_abs_diff=float(d_a.max()), alpha_mean_abs_diff=float(d_a.mean()),
               pixels_rgb_diff_over_1e2=int((d_rgb.amax(-1) > 1e-2).sum()), alpha_mean=float(ref[1].mean()))  # fmt: skip
    rec["grad_rel_err"] = {k: rel_err(out[3][k], ref[3][k]) for k in PARAMS}
    g_gs, g_t = out[2]["means2d"].grad, ref[2]["means2d"].grad
    rec["means2d_grad_rel_err"] = None if g_gs is None or g_t is None else rel_err(g_gs, g_t)
    rec["visible_gsplat"], rec["visible_torch"] = int(out[2]["visible"].sum()), int(ref[2]["visible"].sum())
    log(f"  gsplat vs torch: rgb max {rec['rgb_max_abs_diff']:.2e} mean {rec['rgb_mean_abs_diff']:.2e}, alpha max "
        f"{rec['alpha_max_abs_diff']:.2e} mean {rec['alpha_mean_abs_diff']:.2e}; grad rel err {rec['grad_rel_err']}")
    ok = rec["rgb_mean_abs_diff"] < 2e-3 and rec["alpha_mean_abs_diff"] < 2e-3 and rec["rgb_max_abs_diff"] < 0.1
    ok = ok and max(rec["grad_rel_err"].values()) < 0.05
    if ARGS.quick:
        timings_guarded(gsplat_backend(), rec, [2000], 64, 1)
    else:
        timings_guarded(gsplat_backend(), rec, [10_000, 100_000], 400, 5)
    return "PASS" if ok else "FAIL"


# ----------------------------------------------------------------------------------------------------------------
# 3. NeRF
# ----------------------------------------------------------------------------------------------------------------
def _write_side_by_side(path: Path, pred: torch.Tensor, gt: torch.Tensor) -> None:
    import cv2

    img = torch.cat([pred.detach().cpu().clamp(0, 1), gt.detach().cpu().clamp(0, 1)], 1).numpy()
    cv2.imwrite(str(path), (img[..., ::-1] * 255 + 0.5).astype(np.uint8))


def check_nerf(rec: dict):
    from human3d.nerf import NerfTrainer, preset

    threads = torch.get_num_threads()
    secs = min(ARGS.nerf_seconds, max(5.0, remaining() - ARGS.reserve["nerf"]))
    downscale = 8 if ARGS.quick else 4
    cfg = preset("fast", **{"data.downscale": downscale, "run.time_budget_s": secs, "run.max_steps": 10**9,
                            "run.checkpoint_every": 10**9, "run.log_every": 10**9, "run.device": ARGS.device})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tr = NerfTrainer(Path(tmp) / "nerf", ARGS.data, config=cfg)
        try:
            rec["trainer_device"] = str(tr.device)
            rec["param_devices"] = sorted({str(p.device) for p in tr.model.parameters()})
            rec["buffer_devices"] = sorted({str(b.device) for b in tr.model.buffers()})
            busy = build_running()
            t = time.perf_counter()
            info = tr.train(progress=False)
            sync()
            wall = time.perf_counter() - t
            rec["ray_data_device"] = str(getattr(tr, "_images", torch.empty(0)).device)
            rec.update(steps=tr.step, train_s=round(tr.elapsed, 1), wall_s=round(wall, 1),
                       steps_per_s=round(tr.step / max(tr.elapsed, 1e-9), 2), last_rays=info.get("rays"),
                       last_samples=info.get("samples"), build_running_at_start=busy, res=tr.train_split.width)  # fmt: skip
            t = time.perf_counter()
            m = tr.evaluate("val", max_views=ARGS.eval_views, write_images=False)
            rec.update(val_psnr=round(m["psnr"], 2), val_ssim=round(m["ssim"], 4), val_views=m["n_views"],
                       eval_s=round(time.perf_counter() - t, 1))  # fmt: skip
            s = tr.load_split("val")
            pred = tr.render_view(s.cameras[0])
            _write_side_by_side(Path(ARGS.out) / "nerf_val0.png", pred, s.images[0])
            if ARGS.device == "cuda":
                rec["max_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        finally:
            torch.set_num_threads(threads)  # the fast preset sets 1 thread process-wide
    log(f"  nerf: {rec['steps']} steps in {rec['train_s']} s ({rec['steps_per_s']} steps/s), val PSNR "
        f"{rec['val_psnr']} dB on {rec['val_views']} views at {rec['res']} px")
    on_dev = all(d.startswith(ARGS.device) for d in rec["param_devices"] + rec["buffer_devices"])
    on_dev = on_dev and rec["ray_data_device"].startswith(ARGS.device) and rec["trainer_device"].startswith(ARGS.device)
    rec["all_on_device"] = on_dev
    return "PASS" if on_dev and rec["val_psnr"] > (10 if ARGS.quick else 20) else "FAIL"


# ----------------------------------------------------------------------------------------------------------------
# 4. splat training
# ----------------------------------------------------------------------------------------------------------------
def _splat_train(rec: dict, backend: str, key: str):
    from human3d.splat import SplatTrainer, preset

    secs = min(ARGS.splat_seconds, max(5.0, remaining() - ARGS.reserve[key]))
    over = {"run.time_budget_s": secs, "raster.backend": backend, "run.device": ARGS.device,
            "run.checkpoint_every": 10**9, "run.log_every": 10**9}
    if ARGS.quick:
        over.update({"data.downscale": 8, "init.num_points": 2000, "densify.max_gaussians": 5000,
                     "optim.patch_size": 0})
    cfg = preset("fast", **over)
    with tempfile.TemporaryDirectory() as tmp:
        tr = SplatTrainer(Path(tmp) / "splat", ARGS.data, config=cfg)
        rec["trainer_device"] = str(tr.device)
        busy = build_running()
        t = time.perf_counter()
        tr.train(progress=False)
        sync()
        wall = time.perf_counter() - t
        rec["gaussian_devices"] = sorted({str(v.device) for v in tr.gaussians.tensors().values()})
        rec["image_device"] = str(tr._level(1.0)["images"].device) if hasattr(tr, "_level") else "?"
        rec.update(backend=backend, steps=tr.step, train_s=round(tr.elapsed, 1), wall_s=round(wall, 1),
                   steps_per_s=round(tr.step / max(tr.elapsed, 1e-9), 2), gaussians=len(tr.gaussians),
                   build_running_at_start=busy, res=tr.train_split.width)  # fmt: skip
        t = time.perf_counter()
        m = tr.evaluate("val", max_views=ARGS.eval_views, write_images=False)
        rec.update(val_psnr=round(m["psnr"], 2), val_ssim=round(m["ssim"], 4), val_views=m["n_views"],
                   eval_s=round(time.perf_counter() - t, 1), render_ms_per_view=round(1000 * m["render_s_per_view"], 1))  # fmt: skip
        s = tr.load_split("val")
        _write_side_by_side(Path(ARGS.out) / f"{key}_val0.png", tr.render_view(s.cameras[0]), s.images[0])
        if ARGS.device == "cuda":
            rec["max_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    log(f"  splat[{backend}]: {rec['steps']} steps in {rec['train_s']} s ({rec['steps_per_s']} steps/s), "
        f"{rec['gaussians']} Gaussians, val PSNR {rec['val_psnr']} dB on {rec['val_views']} views at {rec['res']} px")
    on_dev = all(d.startswith(ARGS.device) for d in rec["gaussian_devices"]) and rec["image_device"].startswith(ARGS.device)
    rec["all_on_device"] = on_dev
    return "PASS" if on_dev and rec["val_psnr"] > (10 if ARGS.quick else 20) else "FAIL"


def check_splat_torch(rec: dict):
    return _splat_train(rec, "torch", "splat_torch")


def check_splat_gsplat(rec: dict):
    if not BUILD.get("ok"):
        raise SkipCheck("gsplat not built")
    return _splat_train(rec, gsplat_backend(), "splat_gsplat")


# ----------------------------------------------------------------------------------------------------------------
# 5. SMPL
# ----------------------------------------------------------------------------------------------------------------
def check_smpl(rec: dict):
    from human3d.synth import smpl_files as smpl_synth
    from human3d.body.smpl import SMPL

    with tempfile.TemporaryDirectory() as tmp:
        path = smpl_synth.write_pickle(Path(tmp) / "SMPL_NEUTRAL.pkl", smpl_synth.make_model_data("smpl"))
        cpu = SMPL(path)
        dev = SMPL(path).to(ARGS.device)
    B = 64
    g = torch.Generator().manual_seed(0)
    params = {"global_orient": torch.randn(B, 3, generator=g) * 0.5, "body_pose": torch.randn(B, 69, generator=g) * 0.3,
              "betas": torch.randn(B, 10, generator=g), "transl": torch.randn(B, 3, generator=g) * 0.1}  # fmt: skip
    params_dev = {k: v.to(ARGS.device) for k, v in params.items()}
    a, b = cpu(params), dev(params_dev)
    rec["vertices_max_abs_diff"] = float((b.vertices.cpu() - a.vertices).abs().max())
    rec["joints_max_abs_diff"] = float((b.joints.cpu() - a.joints).abs().max())
    rec["keypoints_max_abs_diff"] = max(float((b.keypoints[k].cpu() - a.keypoints[k]).abs().max()) for k in a.keypoints)
    rec["output_device"] = str(b.vertices.device)
    rec["buffer_devices"] = sorted({str(t.device) for t in dev.buffers()})
    with torch.no_grad():
        rec["forward_ms_cpu_B64"] = timeit_ms(lambda: cpu(params), 3)
        rec["forward_ms_dev_B64"] = timeit_ms(lambda: dev(params_dev), 20)
    p2 = {k: v.clone().requires_grad_(True) for k, v in params_dev.items()}

    def fwd_bwd():
        out = dev(p2)
        (out.vertices.square().sum() + out.joints.sum()).backward()

    rec["forward_backward_ms_dev_B64"] = timeit_ms(fwd_bwd, 10)
    log(f"  SMPL B=64: vertices diff {rec['vertices_max_abs_diff']:.2e}, joints {rec['joints_max_abs_diff']:.2e}; "
        f"forward CPU {rec['forward_ms_cpu_B64']} ms, {ARGS.device} {rec['forward_ms_dev_B64']} ms")
    ok = rec["vertices_max_abs_diff"] < 1e-4 and rec["joints_max_abs_diff"] < 1e-4
    return "PASS" if ok and rec["output_device"].startswith(ARGS.device) else "FAIL"


def prepare_fit(folder: Path, n: int = 1024) -> None:
    """Write the ``fit`` check's inputs (needs Anny and the shared mocap; run on the development machine)."""
    import numpy as np

    from human3d.body.smpl import SMPL
    from human3d.fitting.synthetic import make_synthetic_set, smpl_data_from_anny

    folder.mkdir(parents=True, exist_ok=True)
    data = smpl_data_from_anny()
    arrays = {k: (v.toarray() if hasattr(v, "toarray") else np.asarray(v)) for k, v in data.items()}
    np.savez_compressed(folder / "fit_smpl_model.npz", **arrays)
    model = SMPL(folder / "fit_smpl_model.npz")
    ds = make_synthetic_set(model, n, seed=0)
    np.savez_compressed(folder / "fit_smpl_set.npz", keypoints2d=ds.keypoints2d.numpy(), K=ds.K.numpy(),
                        keypoints3d=ds.keypoints3d.numpy(), size=np.array([ds.width, ds.height]))  # fmt: skip
    print(f"wrote {folder}/fit_smpl_model.npz and fit_smpl_set.npz ({n} persons)")


def check_fit(rec: dict):
    import numpy as np

    from human3d.body.smpl import SMPL
    from human3d.fitting import smplify
    from human3d.metrics import pa_mpjpe

    folder = Path(ARGS.fit_data)
    if not (folder / "fit_smpl_set.npz").is_file():
        raise SkipCheck(f"no {folder}/fit_smpl_set.npz (make it with --prepare-fit)")
    d = np.load(folder / "fit_smpl_set.npz")
    kp, K, X3 = (torch.from_numpy(d[k]).float() for k in ("keypoints2d", "K", "keypoints3d"))
    size = tuple(int(v) for v in d["size"])
    model_cpu = SMPL(folder / "fit_smpl_model.npz")
    model = SMPL(folder / "fit_smpl_model.npz").to(ARGS.device)
    batches = [32, 256] if ARGS.quick else [32, 256, 1024]
    batches = [b for b in batches if b <= kp.shape[0]]

    def run(m, dev, b, prior):
        t = time.perf_counter()
        res = smplify(m, kp[:b].to(dev), K[:b].to(dev), prior=prior, image_size=size)
        sync()
        wall = time.perf_counter() - t
        with torch.no_grad():
            pred = m(res.params).keypoints["coco17"].cpu()
        pa = float((pa_mpjpe(pred, X3[:b]) * 1000).mean())
        return wall, pa, float(res.reprojection_error_px.float().mean()), str(res.params["body_pose"].device)

    for prior in ("simple", "flow"):
        for b in batches:
            wall, pa, rp, dev = run(model, ARGS.device, b, prior)
            rec[f"{prior}_B{b}_wall_s"] = round(wall, 2)
            rec[f"{prior}_B{b}_s_per_person"] = round(wall / b, 4)
            rec[f"{prior}_B{b}_pa_mpjpe_mm"] = round(pa, 1)
            rec[f"{prior}_B{b}_reproj_px"] = round(rp, 2)
            rec["params_device"] = dev
            log(f"  fit[{prior}] B={b}: {wall:.2f} s ({wall / b * 1000:.1f} ms/person), PA-MPJPE {pa:.1f} mm, "
                f"reprojection {rp:.2f} px on {dev}")
    wall, pa, rp, _ = run(model_cpu, "cpu", 32, "simple")
    rec.update(cpu_simple_B32_wall_s=round(wall, 2), cpu_simple_B32_pa_mpjpe_mm=round(pa, 1), cpu_threads=torch.get_num_threads())
    log(f"  fit[simple] on CPU ({torch.get_num_threads()} threads) B=32: {wall:.2f} s, PA-MPJPE {pa:.1f} mm")
    ok = rec["params_device"].startswith(ARGS.device) and rec["simple_B32_pa_mpjpe_mm"] < 90
    return "PASS" if ok else "FAIL"


# ----------------------------------------------------------------------------------------------------------------
def environment() -> None:
    env = RESULTS["env"]
    env.update(python=sys.version.split()[0], torch=torch.__version__, torch_cuda=torch.version.cuda,
               cuda_available=torch.cuda.is_available(), threads=torch.get_num_threads(), argv=sys.argv[1:],
               TORCH_CUDA_ARCH_LIST=os.environ.get("TORCH_CUDA_ARCH_LIST"), MAX_JOBS=os.environ.get("MAX_JOBS"),
               cpu_count=os.cpu_count())  # fmt: skip
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_mem_gb=round(p.total_memory / 2**30, 1), capability=list(torch.cuda.get_device_capability()))
    try:
        env["nvcc"] = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[-1]
    except Exception as e:  # noqa: BLE001
        env["nvcc"] = f"unavailable ({type(e).__name__})"
    try:
        import ninja  # noqa: F401

        env["ninja"] = "python package present"
    except ImportError:
        env["ninja"] = "python package missing"
    for mod in ("roma", "gsplat", "cv2", "safetensors", "scipy", "tqdm"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "ok")
        except Exception as e:  # noqa: BLE001
            env[mod] = f"missing ({type(e).__name__}: {e})"
    try:
        import human3d.nerf  # noqa: F401
        import human3d.splat  # noqa: F401

        env["human3d_import"] = "ok"
        env["anny_imported_by_splat_nerf"] = "anny" in sys.modules or "warp" in sys.modules
    except Exception as e:  # noqa: BLE001
        env["human3d_import"] = f"FAILED: {type(e).__name__}: {e}"
    log("env: " + json.dumps(env))
    write_json()


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / ".gpu" / "data" / "nerf_lego_400"), help="lego Blender folder")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu_check"), help="folder for JSON, log, PNGs")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="device under test (cpu: dry run)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and budgets (CPU dry run)")
    ap.add_argument("--budget", type=float, default=420.0, help="total seconds for the whole script")
    ap.add_argument("--nerf-seconds", type=float, default=60.0, help="NeRF training seconds")
    ap.add_argument("--splat-seconds", type=float, default=90.0, help="splat training seconds per backend")
    ap.add_argument("--eval-views", type=int, default=5, help="val views evaluated after training")
    ap.add_argument("--gsplat-build-timeout", type=float, default=240.0, help="seconds allowed for gsplat's JIT build")
    ap.add_argument("--no-gsplat", action="store_true", help="skip the gsplat build and checks")
    ap.add_argument("--gsplat-channels", default="1,2,3,4,5,8,9,16,17",
                    help="channel counts to compile gsplat's rasterization kernels for (a trimmed copy of the "
                         "package; ~30x less kernel code to build), or 'all' for the package as installed")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--fit-data", default=str(ROOT / ".gpu" / "data"), help="folder of the fit check's inputs")
    ap.add_argument("--prepare-fit", default="", help="write the fit check's inputs to this folder and exit "
                    "(needs Anny and the shared mocap data)")
    ARGS = ap.parse_args()
    if ARGS.prepare_fit:
        prepare_fit(Path(ARGS.prepare_fit))
        return 0
    ARGS.only = [s for s in ARGS.only.split(",") if s]
    bad = set(ARGS.only) - set(CHECKS)
    if bad:
        ap.error(f"--only: unknown check(s) {sorted(bad)}")
    Path(ARGS.out).mkdir(parents=True, exist_ok=True)
    if ARGS.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; use --device cpu for a dry run", file=sys.stderr)
        RESULTS["env"]["error"] = "CUDA not available"
        write_json()
        return 2
    if ARGS.quick:
        ARGS.nerf_seconds, ARGS.splat_seconds = min(ARGS.nerf_seconds, 8.0), min(ARGS.splat_seconds, 8.0)
        ARGS.eval_views = min(ARGS.eval_views, 2)
    gs = not ARGS.no_gsplat
    # seconds kept back for the checks after each training (so a long training cannot starve them)
    ARGS.reserve = {"nerf": 20 + (ARGS.splat_seconds + 25) * (2 if gs else 1),
                    "splat_torch": 20 + (ARGS.splat_seconds + 25 if gs else 0),
                    "splat_gsplat": 10}  # fmt: skip
    # an outer `timeout` sends SIGTERM: exit through the finally below so the build (its own session) is killed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    start_gsplat_build()
    try:
        environment()
        quick = ARGS.quick
        run_check("raster_torch", check_raster_torch, 60 if quick else 90)
        run_check("smpl", check_smpl, 60)
        run_check("fit", check_fit, 150)
        run_check("nerf", check_nerf, ARGS.nerf_seconds + 60)
        run_check("splat_torch", check_splat_torch, ARGS.splat_seconds + 60)
        if gs:
            run_check("gsplat_build", check_gsplat_build, ARGS.gsplat_build_timeout + 30, min_needed=1)
            run_check("raster_gsplat", check_raster_gsplat, 60)
            run_check("splat_gsplat", check_splat_gsplat, ARGS.splat_seconds + 60)
    finally:
        stop_build()
        if "fh" in BUILD:
            BUILD["fh"].close()
    summary = {k: v["status"] for k, v in RESULTS["checks"].items()}
    RESULTS["summary"] = summary
    write_json()
    log("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return 0 if all(v != "FAIL" for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
