"""Throughput of the synthetic-human generator (``human3d synth make``) on CPU.

    .venv/bin/python tools/bench/synth.py [--n 48] [--size 256] [--batch 8] [--max-people 3] [--threads N]

Prints images/s for rendering alone (:meth:`SynthGenerator.generate`) and for the whole dataset writer
(:func:`human3d.synth.coco.make_dataset`: render + JPEG + COCO JSON), after one warm-up batch (mocap retargeting,
prior loading and the photo bank are loaded once per process and not counted).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from human3d.synth import SynthConfig, SynthGenerator
from human3d.synth.coco import make_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-people", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = SynthConfig(size=a.size, max_people=a.max_people)
    gen = SynthGenerator(config=cfg)
    gen.generate(2, seed=-1)  # warm-up: mocap, prior, photos
    gen.generate(2, seed=-2)  # warm-up: both pose sources
    t = time.perf_counter()
    for i in range(0, a.n, a.batch):
        gen.generate(min(a.batch, a.n - i), seed=i)
    render = a.n / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        make_dataset(d, a.n, cfg, batch_size=a.batch, model=gen.model)
        full = a.n / (time.perf_counter() - t)
    print(f"synth {a.size}x{a.size}, up to {a.max_people} people, batch {a.batch}, {torch.get_num_threads()} "
          f"thread(s): render {render:.1f} images/s; render + write (JPEG + COCO JSON) {full:.1f} images/s")


if __name__ == "__main__":
    main()
