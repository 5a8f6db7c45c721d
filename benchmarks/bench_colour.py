"""Benchmark: sRGB -> CIELAB -> CIEDE2000 mean on real 1024x1024 SPCD photos, side by side with the peers.

Measured in one run, interleaved round by round (median of ``--repeats`` rounds, and the median of
the per-round time ratios, which cancels most of the noise of a shared machine):

- ``cdbench_native``: the default CPU path of ``create_model("ciede2000")`` (the C kernel of
  :mod:`cdbench.colour.native`, ``torch.get_num_threads()`` threads), and ``cdbench_native_1t`` (1 thread);
- ``cdbench_torch_eager``: the fused torch kernel without compilation (the fallback path);
- ``cdbench_torch_compile`` (``--compile``): the same kernel through ``torch.compile`` (minutes to build);
- ``cdbench_float64_reference``: the plain-torch float64 reference the exactness tests check;
- ``skimage``: ``skimage.color.rgb2lab`` + ``deltaE_ciede2000`` (float64, one thread);
- ``colour_science``: ``colour.sRGB_to_XYZ`` + ``XYZ_to_Lab`` + ``delta_E_CIE2000``.

Also recorded: the fast paths' deviation from the float64 reference on the real photos (per pixel
and on the mean), peak memory of each implementation (fresh subprocess: peak resident set size,
sampled every millisecond, above the RSS with the inputs loaded), PNG decoding (kornia-rs, Pillow,
OpenCV; 1 thread), end-to-end ``score()`` on the 13 scored I0249 pairs from the PNG files, the
projection to all 30,000 SPCD pairs (15,000 unique images) on this machine, and the Spearman
correlation of every formula with the human scores.
With ``--device cuda``: the fused kernel's throughput on the GPU in Gpixel/s and the time to score
30,000 decoded 1024x1024 pairs.

    python benchmarks/bench_colour.py                    # CPU, writes benchmarks/results/bench_colour.json
    python benchmarks/bench_colour.py --device cuda      # GPU, writes bench_colour_cuda.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdbench.io import atomic_write_json  # noqa: E402
from cdbench.versions import environment_versions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPCD = ROOT.parent / "shared" / "data" / "spcd"
N_SPCD_PAIRS, N_SPCD_IMAGES = 30_000, 15_000


def _load(path):
    from cdbench.data.images import load_image

    return np.ascontiguousarray(load_image(path))


# --------------------------------------------------------------------------- implementations
def impl_cdbench_native(a, b, threads=None):
    from cdbench.colour.native import native_ciede2000_map

    m = native_ciede2000_map(torch.from_numpy(a), torch.from_numpy(b), threads=threads)
    if m is None:
        raise RuntimeError("native kernel unavailable")
    return float(m.double().mean())


def impl_cdbench_native_1t(a, b):
    return impl_cdbench_native(a, b, threads=1)


def impl_cdbench_torch_eager(a, b):
    from cdbench.colour.fused import fused_difference_map

    return float(fused_difference_map(torch.from_numpy(a), torch.from_numpy(b), backend="eager").double().mean())


def impl_cdbench_torch_compile(a, b):
    from cdbench.colour.fused import fused_difference_map

    return float(fused_difference_map(torch.from_numpy(a), torch.from_numpy(b), backend="compile").double().mean())


def impl_cdbench_float64_reference(a, b):
    from cdbench.colour import difference_map

    return float(difference_map(a, b, dtype=torch.float64, fast=False).mean())


def impl_skimage(a, b):
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean())


def impl_colour_science(a, b):
    import colour

    def lab(x):
        return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(x / 255.0))

    return float(colour.difference.delta_E_CIE2000(lab(a), lab(b)).mean())


IMPLS = {
    "cdbench_native": impl_cdbench_native,
    "cdbench_native_1t": impl_cdbench_native_1t,
    "cdbench_torch_eager": impl_cdbench_torch_eager,
    "cdbench_torch_compile": impl_cdbench_torch_compile,
    "cdbench_float64_reference": impl_cdbench_float64_reference,
    "skimage": impl_skimage,
    "colour_science": impl_colour_science,
}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_peak_memory(impl: str, path_a: str, path_b: str) -> None:
    """Subprocess mode: run one implementation once, print its peak RSS above the loaded inputs."""
    import warnings

    warnings.filterwarnings("ignore")
    a, b = _load(path_a), _load(path_b)
    if impl.startswith("cdbench_native"):
        impl_cdbench_native_1t(a[:4, :4].copy(), b[:4, :4].copy())  # load the kernel (not the data)
    import threading

    import colour  # noqa: F401 - imports outside the measured part
    import skimage.color  # noqa: F401

    base = _rss_mb()
    peak = [base]
    done = threading.Event()

    def sample():  # poll the resident set size every millisecond while the implementation runs
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.001)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    IMPLS[impl](a, b)
    done.set()
    t.join()
    peak[0] = max(peak[0], _rss_mb())
    print(json.dumps({"impl": impl, "rss_with_inputs_mb": base, "peak_rss_mb": peak[0],
                      "peak_above_inputs_mb": peak[0] - base}))


# --------------------------------------------------------------------------- measurements
def kernel_benchmark(pairs, impls, repeats):
    times = {k: [] for k in impls}
    values = {k: [] for k in impls}
    for a, b in pairs[:1]:  # warm up (kernel build / compile, imports)
        for k in impls:
            IMPLS[k](a, b)
    for r in range(repeats):
        a, b = pairs[r % len(pairs)]
        for k in impls:
            t = time.perf_counter()
            values[k].append(IMPLS[k](a, b))
            times[k].append(time.perf_counter() - t)
        print(f"  round {r + 1}/{repeats}: " + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in impls), flush=True)
    mpix = pairs[0][0].shape[0] * pairs[0][0].shape[1] / 1e6
    out = {}
    for k in impls:
        out[k] = {"median_s": statistics.median(times[k]), "min_s": min(times[k]),
                  "mpix_per_s": mpix / statistics.median(times[k]), "times_s": times[k]}
    for peer in ("skimage", "colour_science"):
        if peer in impls:
            for k in impls:
                if k.startswith("cdbench"):
                    ratios = [tp / tk for tp, tk in zip(times[peer], times[k])]
                    out[k][f"speedup_vs_{peer}"] = statistics.median(ratios)
    return out


def accuracy(pairs, compile_too):
    from cdbench.colour import difference_map
    from cdbench.colour.fused import fused_difference_map
    from cdbench.colour.native import native_ciede2000_map

    rows = {}
    for i, (a, b) in enumerate(pairs):
        ref = difference_map(a, b, dtype=torch.float64, fast=False)
        paths = {"native": native_ciede2000_map(torch.from_numpy(a), torch.from_numpy(b)),
                 "torch_eager": fused_difference_map(torch.from_numpy(a), torch.from_numpy(b), backend="eager")}
        if compile_too:
            paths["torch_compile"] = fused_difference_map(torch.from_numpy(a), torch.from_numpy(b), backend="compile")
        for name, m in paths.items():
            if m is None:
                continue
            d = (m.double() - ref).abs()
            r = rows.setdefault(name, {"max_abs_per_pixel": 0.0, "max_abs_on_mean": 0.0})
            r["max_abs_per_pixel"] = max(r["max_abs_per_pixel"], float(d.max()))
            r["max_abs_on_mean"] = max(r["max_abs_on_mean"], abs(float(m.double().mean() - ref.mean())))
        print(f"  accuracy pair {i + 1}/{len(pairs)} done", flush=True)
    return rows


def decode_benchmark(paths):
    import cv2
    import kornia_rs
    from PIL import Image

    read = getattr(getattr(kornia_rs, "io", None), "read_image_png_u8", None) or kornia_rs.read_image_png_u8
    decoders = {
        "kornia_rs": lambda p: np.asarray(read(str(p), "rgb")),
        "pillow": lambda p: np.asarray(Image.open(p).convert("RGB")),
        "opencv": lambda p: cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
    }
    out = {}
    ref = {p: decoders["pillow"](p) for p in paths}
    cv2.setNumThreads(1)
    for name, dec in decoders.items():
        t = time.perf_counter()
        same = all(np.array_equal(dec(p), ref[p]) for p in paths)
        dt = time.perf_counter() - t
        out[name] = {"images_per_s_1_thread": len(paths) / dt, "identical_pixels": bool(same)}
    from cdbench.data.images import load_pairs

    t = time.perf_counter()
    load_pairs([(p, p) for p in paths])
    dt = time.perf_counter() - t
    out["cdbench_load_pairs_parallel"] = {"images_per_s": len(paths) / dt, "workers": os.cpu_count()}
    return out


def end_to_end(pairs, repeats):
    import cdbench

    model = cdbench.create_model("ciede2000")
    model.score(pairs[:1])  # load the kernel
    unique = sorted({p for pair in pairs for p in pair})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        scores = model.score(pairs)
        times.append(time.perf_counter() - t)
    # the two parts of the projection: decode per image (parallel loader) and compute per pair
    from cdbench.data.images import load_pairs

    t = time.perf_counter()
    decoded = load_pairs([(p, p) for p in unique])
    t_decode = (time.perf_counter() - t) / len(unique)
    arrays = {p: d[0] for p, d in zip(unique, decoded)}
    from cdbench.colour.native import native_ciede2000_from_lab, native_lab_planes

    t = time.perf_counter()
    for a, b in pairs:
        impl_cdbench_native(arrays[a], arrays[b])
    t_fused = (time.perf_counter() - t) / len(pairs)
    t = time.perf_counter()
    labs = {p: native_lab_planes(torch.from_numpy(arrays[p])) for p in unique}
    t_lab = (time.perf_counter() - t) / len(unique)
    t = time.perf_counter()
    for a, b in pairs:
        float(native_ciede2000_from_lab(labs[a], labs[b]).double().mean())
    t_de_lab = (time.perf_counter() - t) / len(pairs)
    # score() converts each image to CIELAB once and reuses it (SPCD: 2 x 30,000 / 15,000 = 4 uses)
    t_pair = t_de_lab + 2 * t_lab / (2 * N_SPCD_PAIRS / N_SPCD_IMAGES)
    projection = N_SPCD_IMAGES * t_decode + N_SPCD_PAIRS * t_pair
    return {
        "pairs": len(pairs), "unique_images": len(unique), "median_s": statistics.median(times),
        "pairs_per_s": len(pairs) / statistics.median(times),
        "decode_s_per_image_parallel": t_decode, "compute_s_per_pair": t_pair,
        "fused_s_per_pair": t_fused, "lab_s_per_image": t_lab, "ciede2000_from_lab_s_per_pair": t_de_lab,
        "projection_30000_pairs_15000_images_s": projection,
        "projection_note": "decode and compute added (no overlap credited), measured on this machine now",
        "scores": [float(s) for s in scores],
    }


def correlations(pairs, human):
    from scipy.stats import pearsonr, spearmanr

    import cdbench
    from cdbench.models.formulas import FORMULA_NAMES

    out = {}
    for name in FORMULA_NAMES:
        t = time.perf_counter()
        s = cdbench.create_model(name).score(pairs)
        out[name] = {"srcc": float(spearmanr(s, human).statistic), "plcc": float(pearsonr(s, human).statistic),
                     "seconds": time.perf_counter() - t}
        print(f"  {name}: SRCC {out[name]['srcc']:.4f} ({out[name]['seconds']:.1f}s)", flush=True)
    return out


def gpu_benchmark(pairs, repeats):
    from cdbench.colour.fused import fused_difference_map

    dev = torch.device("cuda")
    a, b = (torch.from_numpy(x).to(dev) for x in pairs[0])
    out = {}
    for backend in ("eager", "compile"):
        try:
            fused_difference_map(a, b, backend=backend)
            torch.cuda.synchronize()
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                fused_difference_map(a, b, backend=backend).double().mean().item()
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - t)
            gpix = a.shape[0] * a.shape[1] / statistics.median(ts) / 1e9
            out[backend] = {"gpix_per_s": gpix, "median_s": statistics.median(ts),
                            "projection_30000_decoded_pairs_s": N_SPCD_PAIRS * statistics.median(ts)}
        except Exception as e:  # noqa: BLE001 - record why a backend did not run
            out[backend] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spcd", type=Path, default=SPCD, help="folder with train_data.csv and images/")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (builds for minutes)")
    ap.add_argument("--no-correlations", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "A", "B"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_peak_memory(*args.child)
        return 0
    import warnings

    warnings.filterwarnings("ignore")
    rows = [r for r in csv.DictReader(open(args.spcd / "train_data.csv")) if "I0249" in r["image1"]]
    images = args.spcd / "images"
    pairs_paths = [(images / r["image1"], images / r["image2"]) for r in rows]
    human = np.array([float(r["score"]) for r in rows])
    decoded = {p: _load(p) for pair in pairs_paths for p in pair}
    bench_pairs = [(decoded[a], decoded[b]) for a, b in pairs_paths[:3]]
    result = {"benchmark": "bench_colour", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "device": args.device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_average_start": os.getloadavg(), "image_size": list(bench_pairs[0][0].shape),
              "versions": environment_versions(extra=("colour-science", "scikit-image", "opencv-python-headless"))}
    name = "bench_colour.json" if args.device == "cpu" else f"bench_colour_{args.device.replace(':', '')}.json"
    out_path = args.out or RESULTS / name
    if args.device.startswith("cuda"):
        result["gpu"] = gpu_benchmark(bench_pairs, args.repeats)
        print(json.dumps(result["gpu"], indent=2))
        atomic_write_json(out_path, result)
        return 0

    impls = ["cdbench_native", "cdbench_native_1t", "cdbench_torch_eager", "cdbench_float64_reference",
             "skimage", "colour_science"]
    if args.compile:
        impls.insert(3, "cdbench_torch_compile")
    print("kernel: sRGB -> Lab -> CIEDE2000 mean, 1024x1024 pair", flush=True)
    result["kernel"] = kernel_benchmark(bench_pairs, impls, args.repeats)
    print("accuracy of the fast paths against the float64 reference", flush=True)
    result["accuracy_vs_float64_reference"] = accuracy(bench_pairs, args.compile)
    if not args.no_memory:
        mem = {}
        for k in impls:
            res = subprocess.run([sys.executable, __file__, "--child", k, str(pairs_paths[0][0]),
                                  str(pairs_paths[0][1])], capture_output=True, text=True, timeout=1200)
            try:
                mem[k] = json.loads(res.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                mem[k] = {"error": res.stderr.strip()[-300:]}
        result["peak_memory"] = mem
    print("decoding", flush=True)
    result["decode"] = decode_benchmark(sorted(decoded))
    print("end to end: score() on the 13 I0249 pairs from PNG", flush=True)
    result["end_to_end"] = end_to_end(pairs_paths, max(2, args.repeats // 2))
    if not args.no_correlations:
        print("Spearman / Pearson with the human scores (13 I0249 pairs)", flush=True)
        result["correlations_i0249"] = correlations(pairs_paths, human)
    result["load_average_end"] = os.getloadavg()
    k = result["kernel"]
    result["summary"] = {
        "cdbench_native_mpix_per_s": k["cdbench_native"]["mpix_per_s"],
        "speedup_vs_skimage": k["cdbench_native"].get("speedup_vs_skimage"),
        "speedup_vs_colour_science": k["cdbench_native"].get("speedup_vs_colour_science"),
        "target_20x_skimage_met": (k["cdbench_native"].get("speedup_vs_skimage") or 0) >= 20,
        "target_20x_colour_science_met": (k["cdbench_native"].get("speedup_vs_colour_science") or 0) >= 20,
        "projection_30000_pairs_minutes": result["end_to_end"]["projection_30000_pairs_15000_images_s"] / 60,
        "target_15_minutes_met": result["end_to_end"]["projection_30000_pairs_15000_images_s"] < 15 * 60,
        "native_max_abs_per_pixel_vs_float64": result["accuracy_vs_float64_reference"].get("native", {}).get(
            "max_abs_per_pixel"),
    }
    print(json.dumps(result["summary"], indent=2))
    atomic_write_json(out_path, result)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
