"""Benchmark: mPLUG-Owl2 image preprocessing on the CPU (1024x1024 photos -> 448 px pixel_values).

Side by side in one run, on the same synthetic smooth 1024x1024 RGB images held in memory:

- ``clip_pil_per_image``: transformers' PIL CLIP processor (``CLIPImageProcessorPil``, the numerics of
  the 4.36 ``CLIPImageProcessor`` the released code uses), called once per image as the original
  ``process_images`` does (the peer);
- ``ours_1_thread`` / ``ours_batched``: :class:`MPLUGOwl2ImageProcessor` on the whole list with 1 worker
  thread and with ``--workers`` threads (PIL resize per image in threads, one table lookup per value).

Reports ms per image (median of ``--repeats``) and the largest difference to the peer's pixel values
(0 expected). Results: ``benchmarks/results/bench_mplug_owl2_preprocess.json`` with versions and the
machine's load.

    python benchmarks/bench_mplug_owl2_preprocess.py [--images 32] [--repeats 3] [--workers 2] [--pad]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdbench.io import atomic_write_json  # noqa: E402
from cdbench.versions import environment_versions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def smooth_images(n: int, size: int = 1024, seed: int = 0) -> list[np.ndarray]:
    """Smooth random photos: a coarse random grid upsampled bilinearly, plus a little noise (uint8)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        grid = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        img = np.asarray(grid.resize((size, size), Image.Resampling.BILINEAR)).astype(np.int16)
        img = img + rng.integers(-6, 7, img.shape, dtype=np.int16)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--size", type=int, default=448, help="model input size (448 for the released 7B)")
    ap.add_argument("--pad", action="store_true", help="Q-Align's expand2square (images are square here: no-op)")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_mplug_owl2_preprocess.json")
    args = ap.parse_args(argv)

    import torch
    from PIL import Image
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from cdbench.models.mplug_owl2.image_processing import MPLUGOwl2ImageProcessor

    images = smooth_images(args.images)
    aspect = "pad" if args.pad else None
    peer = CLIPImageProcessorPil(size={"shortest_edge": args.size}, crop_size={"height": args.size,
                                                                              "width": args.size})

    def run_peer():
        return torch.stack([peer.preprocess(Image.fromarray(im), return_tensors="pt")["pixel_values"][0]
                            for im in images])

    one = MPLUGOwl2ImageProcessor(size=args.size, image_aspect_ratio=aspect, workers=1)
    many = MPLUGOwl2ImageProcessor(size=args.size, image_aspect_ratio=aspect, workers=args.workers)
    t_peer, ref = timed(run_peer, args.repeats)
    t_one, a = timed(lambda: one(images), args.repeats)
    t_many, b = timed(lambda: many(images), args.repeats)
    n = len(images)
    result = {
        "benchmark": "mplug_owl2_preprocess",
        "images": n, "input": "1024x1024 uint8 RGB in memory", "size": args.size, "image_aspect_ratio": aspect,
        "ms_per_image": {
            "clip_pil_per_image": 1000 * t_peer / n,
            "ours_1_thread": 1000 * t_one / n,
            f"ours_batched_{args.workers}_threads": 1000 * t_many / n,
        },
        "speedup_vs_peer": {"ours_1_thread": t_peer / t_one, "ours_batched": t_peer / t_many},
        "max_abs_diff_vs_peer": {"ours_1_thread": float((a - ref).abs().max()),
                                 "ours_batched": float((b - ref).abs().max())},
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "versions": environment_versions(extra=("transformers", "pillow")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    for k, v in result["ms_per_image"].items():
        print(f"{k:>28}: {v:7.2f} ms/image")
    print(f"max |diff| vs peer: {result['max_abs_diff_vs_peer']}; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
