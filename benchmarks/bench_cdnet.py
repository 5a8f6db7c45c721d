"""Benchmark: CD-Net inference at 1024x1024 (CPU, and GPU when present) and training step time.

Peer: the public code's formulation of the same network (Wang et al., TPAMI 2023, ``model.py``):
whole image, NCHW, an ``nn.Upsample`` module, ``torch.cat`` of the two branches, and the quadratic
form as ``(B, P, 1, 12) @ M @ (B, P, 12, 1)`` matmuls, float32, one pair per call. It is re-stated
here (:func:`reference_scores`) and checked to give our numbers (max relative difference recorded).

Measured side by side, interleaved round by round, median (and min) of ``--repeats`` rounds:

- ``reference``: the peer above;
- ``ours_whole_nchw``: :meth:`CDNet.cd_map` without bands, NCHW;
- ``ours_whole_cl``: without bands, channels-last;
- ``ours_banded_cl``: the default inference path (32-row bands for the per-pixel part, channels-last);
- ``ours_banded_cl_bf16`` (CPU) / ``..._bf16``, ``..._fp16`` (GPU): autocast, quadratic form in float32;
- GPU only: batches of 4 and 8 pairs;
- ``end_to_end``: ``CDNetModel.score`` on PNG files (decode with ``load_pairs`` overlapped with the
  network): the real SPCD photos in ``../shared/data/spcd/images`` when present, else generated PNGs;
- ``train_batch_prep``: the training input pipeline on the CPU (decode 8 pairs, paired rotation, flips
  and 768 crops), to compare with the GPU step time;
- GPU only: one training step (batch 8, 768 crops, Adam), float32 and bf16 autocast.

    python benchmarks/bench_cdnet.py                    # CPU (2 threads)
    python benchmarks/bench_cdnet.py --device cuda      # GPU: adds batches, fp16/bf16, training step

Results: ``benchmarks/results/bench_cdnet_<device>.json`` with versions and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdbench.io import atomic_write_json  # noqa: E402
from cdbench.models.cdnet.model import CDNetModel  # noqa: E402
from cdbench.models.cdnet.network import CDNet  # noqa: E402
from cdbench.versions import environment_versions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPCD_IMAGES = ROOT.parent / "shared" / "data" / "spcd" / "images"


def reference_scores(net: CDNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The public code's forward, re-stated: NCHW, whole image, matmul quadratic form."""
    def once(z):
        up = torch.nn.Upsample((z.shape[2], z.shape[3]), mode="bilinear", align_corners=True)
        f = torch.cat([net.conv1x1(z), up(net.conv11x11(z))], dim=1)
        lrelu = torch.nn.LeakyReLU()
        return net.conv_m3(lrelu(net.conv_m2(lrelu(net.conv_m1(lrelu(f))))))

    m = net.cube.abs()
    m = (m.t() + m) / 2
    fx, fy = once(x), once(y)
    d = (fx - fy).abs().view(fx.shape[0], fx.shape[1], -1).transpose(1, 2).unsqueeze(2)
    s = torch.sqrt(1e-8 + torch.matmul(torch.matmul(d, m), d.transpose(-2, -1)))
    return s.squeeze(-1).squeeze(-1).mean(dim=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _png_pairs(tmp: Path, size: int, n: int) -> list[tuple[str, str]]:
    if SPCD_IMAGES.is_dir() and size == 1024:
        files = sorted(SPCD_IMAGES.glob("I0249_*.png"))
        if len(files) >= 2:
            pairs = [(str(files[i]), str(files[(i + 1) % len(files)])) for i in range(len(files))]
            return pairs[:n]
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n + 1):
        base = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.BICUBIC)
        p = tmp / f"img{i}.png"
        img.save(p)
        paths.append(str(p))
    return [(paths[i], paths[i + 1]) for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--e2e-pairs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    load_before = os.getloadavg()

    net = CDNet()
    net.reset_parameters(generator=torch.Generator().manual_seed(0))
    net = net.eval().to(device)
    g = torch.Generator().manual_seed(1)
    s = args.size
    x1 = torch.rand(1, 3, s, s, generator=g).to(device)
    y1 = (x1 + 0.05 * torch.rand(1, 3, s, s, generator=g).to(device)).clamp(0, 1)
    cl = torch.channels_last

    def ours(x, y, band, memfmt, dtype=None):
        n = net.to(memory_format=memfmt)
        xx, yy = x.contiguous(memory_format=memfmt), y.contiguous(memory_format=memfmt)
        ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type,
                                                                                                 enabled=False)
        with torch.inference_mode(), ctx:
            return n.cd_map(xx, yy, band_rows=band).double().mean(dim=(1, 2))

    def ref(x, y):
        n = net.to(memory_format=torch.contiguous_format)
        with torch.inference_mode():
            return reference_scores(n, x.contiguous(), y.contiguous())

    variants: dict[str, tuple[Callable[[], torch.Tensor], int]] = {
        "reference": (lambda: ref(x1, y1), 1),
        "ours_whole_nchw": (lambda: ours(x1, y1, None, torch.contiguous_format), 1),
        "ours_whole_cl": (lambda: ours(x1, y1, None, cl), 1),
        "ours_banded_cl": (lambda: ours(x1, y1, 32, cl), 1),
        "ours_banded_cl_bf16": (lambda: ours(x1, y1, 32, cl, torch.bfloat16), 1),
    }
    if cuda:
        xb = {b: x1.expand(b, -1, -1, -1).contiguous() for b in (4, 8)}
        yb = {b: y1.expand(b, -1, -1, -1).contiguous() for b in (4, 8)}
        variants.update({
            "ours_whole_cl_fp16": (lambda: ours(x1, y1, None, cl, torch.float16), 1),
            "ours_whole_cl_bf16": (lambda: ours(x1, y1, None, cl, torch.bfloat16), 1),
            "ours_whole_cl_b4": (lambda: ours(xb[4], yb[4], None, cl), 4),
            "ours_whole_cl_bf16_b8": (lambda: ours(xb[8], yb[8], None, cl, torch.bfloat16), 8),
            "ours_whole_cl_fp16_b8": (lambda: ours(xb[8], yb[8], None, cl, torch.float16), 8),
            "ours_banded_cl_bf16_b8": (lambda: ours(xb[8], yb[8], 128, cl, torch.bfloat16), 8),
        })

    want = ref(x1, y1).double().item()
    accuracy = {}
    for name, (fn, _) in variants.items():
        got = fn()[0].item()
        accuracy[name] = abs(got - want) / abs(want)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, (fn, _) in variants.items():
            times[name].append(_time(fn, device))

    results = {}
    for name, (_, batch) in variants.items():
        med = statistics.median(times[name])
        results[name] = {"batch": batch, "median_s": med, "min_s": min(times[name]),
                         "pairs_per_s": batch / med, "rel_diff_vs_reference": accuracy[name]}
    base = results["reference"]["pairs_per_s"]
    for r in results.values():
        r["speedup_vs_reference"] = r["pairs_per_s"] / base

    # end to end from PNG files
    with tempfile.TemporaryDirectory() as tmp:
        pairs = _png_pairs(Path(tmp), s, args.e2e_pairs)
        e2e = {}
        for prec in (["fp32", "bf16"] if not cuda else ["fp32", "bf16", "fp16"]):
            model = CDNetModel(net, device=device, precision=prec, batch_size=8 if cuda else 1)
            model.score(pairs[:1])
            t = [_time(lambda m=model: m.score(pairs), device) for _ in range(max(1, args.repeats // 2))]
            e2e[prec] = {"pairs": len(pairs), "median_s": statistics.median(t),
                         "pairs_per_s": len(pairs) / statistics.median(t),
                         "images": "real SPCD photos" if SPCD_IMAGES.is_dir() and s == 1024 else "generated PNGs"}
    results["end_to_end"] = e2e

    with tempfile.TemporaryDirectory() as tmp:
        results["train_batch_prep"] = _batch_prep(_png_pairs(Path(tmp), s, 8), max(1, args.repeats // 2))
    if cuda:
        results["train_step"] = _train_steps(device, args.repeats)

    out = args.out or RESULTS / f"bench_cdnet_{device.type}.json"
    record = {
        "benchmark": "bench_cdnet", "device": str(device), "size": s, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "note": "median over interleaved rounds; the CPU is shared with other processes (see loadavg)",
        "results": results, "versions": environment_versions(),
    }
    atomic_write_json(out, record)
    w = max(len(k) for k in results)
    for k, r in results.items():
        if "pairs_per_s" in r:
            print(f"{k:<{w}}  {r['pairs_per_s']:8.3f} pairs/s  x{r['speedup_vs_reference']:.2f}  "
                  f"rel diff {r['rel_diff_vs_reference']:.1e}")
    for k, r in e2e.items():
        print(f"end_to_end {k:<5} {r['pairs_per_s']:8.3f} pairs/s ({r['images']})")
    bp = results["train_batch_prep"]
    print(f"train batch prep (decode + paired crops, batch {bp['batch']}): {bp['median_s'] * 1000:.0f} ms")
    if cuda:
        for k, r in results["train_step"].items():
            print(f"train_step {k}: {r['median_s'] * 1000:.1f} ms")
    print(f"-> {out}")
    return 0


def _batch_prep(pairs: list[tuple[str, str]], repeats: int) -> dict:
    """Training input pipeline on the CPU: decode 8 pairs of PNGs, paired rotation/flips/768 crops (uint8)."""
    from concurrent.futures import ThreadPoolExecutor

    from cdbench.models.cdnet.train import TrainConfig, TrainData, _generator, _make_batch, draw_augments

    cfg = TrainConfig(batch_size=len(pairs), progress=False)
    data = TrainData(pairs, np.arange(len(pairs), dtype=float))
    augs = draw_augments(len(pairs), cfg, _generator(0, 0))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        idx = list(range(len(pairs)))
        _make_batch(data, idx, augs, cfg, pool)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            _make_batch(data, idx, augs, cfg, pool)
            times.append(time.perf_counter() - t0)
    return {"batch": len(pairs), "crop": cfg.crop, "median_s": statistics.median(times), "min_s": min(times),
            "threads": os.cpu_count()}


def _train_steps(device: torch.device, repeats: int) -> dict:
    """One Adam step on batch 8 of 768x768 crops, float32 and bf16 autocast (GPU)."""
    import torch.nn.functional as F

    out = {}
    for amp in ("fp32", "bf16"):
        net = CDNet().to(device).to(memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x = torch.rand(8, 3, 768, 768, device=device).contiguous(memory_format=torch.channels_last)
        y = torch.rand(8, 3, 768, 768, device=device).contiguous(memory_format=torch.channels_last)
        t = torch.rand(8, device=device) * 10

        def step(net=net, opt=opt, x=x, y=y, t=t, amp=amp):
            opt.zero_grad(set_to_none=True)
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp == "bf16" else torch.autocast("cuda",
                                                                                                   enabled=False)
            with ctx:
                pred = net(x, y)
            F.mse_loss(pred.float(), t).backward()
            opt.step()

        step()
        times = [_time(step, device) for _ in range(repeats)]
        out[amp] = {"batch": 8, "crop": 768, "median_s": statistics.median(times), "min_s": min(times),
                    "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30}
        torch.cuda.reset_peak_memory_stats(device)
    return out


if __name__ == "__main__":
    sys.exit(main())
