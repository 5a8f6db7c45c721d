"""Benchmark: ``cdbench build spcd`` on an SPCD-sized synthetic layout vs a plain copy of the same bytes.

The layout has SPCD's shape: ``--images`` PNG files of ``--size`` x ``--size`` pixels (about 1 MB
each at 1024, like the real photos), named ``I{scene}_{source}_{index}.png`` (8 per scene), and
``--pairs`` pairs in ``train_data.csv`` (scored) / ``test_data.csv`` (hidden). The images are a
few encoded PNGs made unique by a per-file ``tEXt`` chunk (valid CRC), so generating them does not
dominate the run; the builder never decodes pixels, so content does not change its cost.

Measured side by side, alternating, ``--repeats`` times, each in its own subprocess (peak RSS of
that process): ``copy`` = ``shutil.copyfile`` of every image the pairs use into a fresh folder (the
floor: the bytes the build must write), ``copy_threads`` = the same in 4 threads (as the builder
copies), ``build`` = ``build_spcd`` with images,
``build_labels_only``, and ``load_dataset`` (first load of the built folder, cache generation) /
``open_split``. Target: build within 1.5x of the copy, memory bounded (streaming).

    python benchmarks/bench_build.py                       # 2,000 images of 1024 px, 4,000 pairs
    python benchmarks/bench_build.py --images 300 --pairs 600   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_build.json"

_CHILD = r"""
import json, resource, shutil, sys, time
from pathlib import Path
kind, src, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if not kind.startswith("copy"):  # imports are not timed: the copies have none
    import datasets, pyarrow.parquet, tqdm, yaml  # noqa: F401
    import cdbench.builders, cdbench.data.dataset  # noqa: F401
t0 = time.perf_counter()
if kind == "copy":  # the used images (those of the pairs), one after the other, like cp
    out.mkdir()
    for name in json.loads((src / "used_images.json").read_text()):
        shutil.copyfile(src / "images" / name, out / name)
elif kind == "copy_threads":  # the same with 4 threads, as the builder copies
    from concurrent.futures import ThreadPoolExecutor
    out.mkdir()
    names = json.loads((src / "used_images.json").read_text())
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda n: shutil.copyfile(src / "images" / n, out / n), names))
elif kind in ("build", "build_labels_only"):
    from cdbench.builders import build_spcd
    build_spcd(src, out, labels_only=kind == "build_labels_only", progress=False)
elif kind == "load_dataset":
    import datasets
    ds = datasets.load_dataset(str(src), "scores", cache_dir=str(out))
    assert ds["train"].num_rows > 0
elif kind == "open_split":
    from cdbench.data.dataset import open_split
    assert open_split(src, "scores", "test").num_rows > 0
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _png_with_text(base: bytes, text: str) -> bytes:
    """Insert a tEXt chunk (valid CRC) after IHDR: a distinct file, identical pixels."""
    data = b"comment\x00" + text.encode()
    chunk = len(data).to_bytes(4, "big") + b"tEXt" + data + zlib.crc32(b"tEXt" + data).to_bytes(4, "big")
    ihdr_end = 8 + 12 + 13
    return base[:ihdr_end] + chunk + base[ihdr_end:]


def make_layout(root: Path, n_images: int, n_pairs: int, size: int, seed: int = 0) -> dict:
    """Write the SPCD-shaped layout; returns its sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    bases = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for k in range(4):
        img = np.stack([np.sin(3 * xx + k) + np.cos(2 * yy), np.cos(4 * yy - k), np.sin(5 * (xx + yy))], -1)
        img = (img - img.min()) / (img.max() - img.min()) * 200 + rng.normal(0, 1.5, img.shape)
        import io

        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG", compress_level=6)
        bases.append(buf.getvalue())
    per_scene = ("01_01", "01_02", "01_03", "01_04", "02_01", "03_01", "04_01", "05_01")
    names = [f"I{i // 8 + 1:04d}_{per_scene[i % 8]}.png" for i in range(n_images)]
    total = 0
    for i, n in enumerate(names):
        data = _png_with_text(bases[i % len(bases)], n)
        (root / "images" / n).write_bytes(data)
        total += len(data)
    scenes: dict[str, list[str]] = {}
    for n in names:
        scenes.setdefault(n[:5], []).append(n)
    candidates = [(a, b) for imgs in scenes.values() for i, a in enumerate(imgs) for b in imgs[i + 1:]]
    pick = sorted(rng.choice(len(candidates), size=min(n_pairs, len(candidates)), replace=False))
    pairs = [candidates[i] for i in pick]
    train = [p for i, p in enumerate(pairs) if i % 3 == 0]
    test = [p for i, p in enumerate(pairs) if i % 3 != 0]
    with open(root / "train_data.csv", "w") as f:
        f.write("image1,image2,score\n")
        for a, b in train:
            f.write(f"{a},{b},{rng.uniform(1.4, 15):.9f}\n")
    with open(root / "test_data.csv", "w") as f:
        f.write("image1,image2,score\n")
        for a, b in test:
            f.write(f"{a},{b},\n")
    used = sorted({n for p in pairs for n in p})
    (root / "used_images.json").write_text(json.dumps(used))  # beside the layout, not read by the builder
    used_bytes = sum((root / "images" / n).stat().st_size for n in used)
    return {"images": len(names), "pairs": len(pairs), "image_bytes": total, "used_images": len(used),
            "used_image_bytes": used_bytes, "size": size}


def _run(kind: str, src: Path, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, kind, str(src), str(out)], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", help="scratch folder (default: a temporary folder, removed)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    from cdbench.io import atomic_write_json
    from cdbench.versions import environment_versions

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_build_"))
    try:
        t = time.perf_counter()
        layout = make_layout(work / "SPCD", args.images, args.pairs, args.size)
        print(f"layout: {layout} in {time.perf_counter() - t:.1f} s", flush=True)
        runs: dict[str, list[dict]] = {"copy": [], "copy_threads": [], "build": [], "build_labels_only": []}
        for r in range(args.repeats):
            for kind in runs:
                out = work / f"{kind}-{r}"
                runs[kind].append(_run(kind, work / "SPCD", out))
                print(f"{kind} #{r}: {runs[kind][-1]}", flush=True)
                if r < args.repeats - 1 or kind != "build":
                    shutil.rmtree(out, ignore_errors=True)
        built = work / f"build-{args.repeats - 1}"
        built_bytes = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
        runs["load_dataset"] = [_run("load_dataset", built, work / "hf-cache")]
        runs["open_split"] = [_run("open_split", built, work / "unused")]
        for k in ("load_dataset", "open_split"):
            print(f"{k}: {runs[k][0]}", flush=True)
        med = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
        result = {
            "benchmark": "bench_build",
            "layout": layout,
            "repeats": args.repeats,
            "median_seconds": med,
            "build_vs_copy": med["build"] / med["copy"],
            "build_vs_copy_threads": med["build"] / med["copy_threads"],
            "target_build_vs_copy": 1.5,
            "peak_rss_mb": {k: max(x["peak_rss_mb"] for x in v) for k, v in runs.items()},
            "built_bytes_vs_unique_image_bytes": built_bytes / layout["used_image_bytes"],
            "runs": runs,
            "cpu_count": os.cpu_count(),
            "note": "each run in its own subprocess (imports done before the clock starts); copy = "
                    "shutil.copyfile of every unique image; all inputs in the page cache (written just before)",
            "versions": environment_versions(),
        }
        atomic_write_json(args.out, result)
        keys = ("median_seconds", "build_vs_copy", "build_vs_copy_threads", "peak_rss_mb",
                "built_bytes_vs_unique_image_bytes")
        print(json.dumps({k: result[k] for k in keys}, indent=1))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
