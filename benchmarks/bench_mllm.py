"""Benchmark: mPLUG-Owl2 (Q-Align / CD-Reasoning shape) scoring and description on one GPU.

A 7B-shaped mPLUG-Owl2 (LLaMA-2-7B + ViT-L/14 at 448 px + 64-query abstractor: ``MPLUGOwl2Config()``,
the reference defaults) with random bf16 weights made on the device (no download, nothing written to
disk), and synthetic 1024x1024 image pairs held in memory (smooth random photos; every pair is
preprocessed for real: resize 1024 -> 448 bicubic, centre crop, normalise). Measured in one run:

- ``score``: :meth:`MPLUGOwl2CDModel.score` end to end (pairs in memory -> level values; image
  preprocessing in worker threads overlapped with the model) at batch 1 and at ``--batches``;
  the best batch is reported with its MFU and peak memory;
- ``score_model_only``: the forward alone on prepared inputs (what the model allows);
- ``original_way``: the peer in the same run: batch 1, eager attention, float16, preprocessing in the
  calling thread before each forward: the original evaluation script's way on this stack;
- ``generation``: greedy decoding with the KV cache, exactly ``--new-tokens`` new tokens per pair, at
  batch 1 and ``--gen-batches``: tokens/s (all new tokens / wall time, prefill included) and
  decode-only tokens/s (prefill time, measured separately, subtracted).

MFU = analytic FLOPs per pair (:func:`flops_per_pair`, about 3.85 TFLOP at 7B) x pairs/s / the GPU's
dense bf16 peak (table below, or ``--peak-tflops``). Targets on one H100 (issue 6): scoring >= 120
pairs/s end to end; generation >= 1,000 tokens/s batched. Anchors of the original code (measured
on one H100, ``../shared/PERFORMANCE.md``) are copied into the results for comparison.

    python benchmarks/bench_mllm.py --device cuda            # 7B-shaped, ~5-8 minutes on an H100
    python benchmarks/bench_mllm.py --tiny                   # CPU smoke run of the same code (seconds)

Results: ``benchmarks/results/bench_mllm_<gpu-or-device>.json`` (``bench_mllm_cpu_smoke.json`` with
``--tiny``), with the GPU name, versions and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdbench.io import atomic_write_json  # noqa: E402
from cdbench.versions import environment_versions  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

PEAK_BF16_TFLOPS = {  # dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets
    "H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0,
    "H100": 989.4, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0,
}

ANCHORS_H100 = {  # ../shared/PERFORMANCE.md, measured 2026-11-26 on one H100 80GB (not in this run)
    "original_model_only_batch1_fp16_eager_pairs_per_s": 11.4,
    "original_end_to_end_batch1_pairs_per_s": 7.7,
    "original_forced_batches_8_32_pairs_per_s": [45.2, 53.6],
    "transformers_5_17_bf16_sdpa_batch1_pairs_per_s": 28.8,
    "transformers_5_17_bf16_sdpa_batch16_64_model_only_pairs_per_s": 111,
    "original_generation_batch1_tokens_per_s": 21.9,
    "transformers_5_17_generation_batch1_batch32_tokens_per_s": [10.2, 485],
    "flops_per_pair_tflop": 3.85,
}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's dense bf16 peak in TFLOP/s (``override`` wins; None on CPU / unknown GPUs)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return PEAK_BF16_TFLOPS[key]
    return None


def flops_per_pair(config, text_tokens: int, logits_rows: int = 1) -> float:
    """Multiply-add FLOPs (2 per MAC) of one scoring forward on a pair (two images + the prompt text).

    ViT (patch embedding, ``L_v`` pre-LN blocks over ``1 + g^2`` tokens, attention included),
    the abstractor (``Q`` queries attending to ``Q + 1 + g^2`` rows: q/o on Q rows, k/v on all rows,
    SwiGLU MLP, then ``visual_fc``), both per image; the LLaMA decoder over ``T = text + 2 (Q + 1)``
    positions (q, k, v, o; SwiGLU MLP; causal attention counted as ``2 T^2 H`` per layer), and the LM
    head on ``logits_rows`` positions. Norms, rotary and softmax are left out (< 1%).
    """
    v, a = config.vision_config, config.abstractor_config
    nv = v.num_positions
    d, dff = v.hidden_size, v.intermediate_size
    vit = 2 * (nv - 1) * (v.num_channels * v.patch_size**2) * d
    vit += v.num_hidden_layers * (2 * nv * (4 * d * d + 2 * d * dff) + 4 * nv * nv * d)
    q, da = a.num_learnable_queries, a.hidden_size
    kv_rows = q + nv
    abst = a.num_hidden_layers * (2 * q * 2 * da * da + 2 * kv_rows * 2 * a.encoder_hidden_size * da
                                  + 4 * q * kv_rows * da + 2 * q * 3 * da * a.intermediate_size)
    abst += 2 * q * da * config.hidden_size
    h, inter = config.hidden_size, config.intermediate_size
    kv = (config.num_key_value_heads or config.num_attention_heads) * (h // config.num_attention_heads)
    t = text_tokens + 2 * (q + 1)
    llm = config.num_hidden_layers * (2 * t * (2 * h * h + 2 * h * kv) + 2 * t * 3 * h * inter + 2 * t * t * h)
    head = 2 * logits_rows * h * config.vocab_size
    return float(2 * (vit + abst) + llm + head)


def synthetic_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` smooth random RGB photos (size x size uint8): a coarse colour grid, upsampled, plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        grid = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
        img = np.repeat(np.repeat(grid, size // 8 + 1, 0), size // 8 + 1, 1)[:size, :size]
        img += rng.normal(0, 6, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def build_model(config, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """An ``MPLUGOwl2LlamaForCausalLM`` of ``config`` with random weights, made directly on ``device``.

    Linear / conv / embedding weights ~ N(0, 0.02^2), norms 1, biases 0 (LLaMA-like scales, so bf16
    activations stay in range); the fixed tables (rotary frequencies, abstractor sin-cos positions)
    are the model's own. Parameters are created in ``dtype``; the sin-cos tables are cast to it, as
    ``from_pretrained(..., dtype=dtype)`` does.
    """
    from cdbench.models.mplug_owl2 import MPLUGOwl2LlamaForCausalLM

    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MPLUGOwl2LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    model.to(device)
    with torch.no_grad():
        for mod in model.modules():
            is_norm = isinstance(mod, torch.nn.LayerNorm) or "RMSNorm" in type(mod).__name__
            for pname, p in mod.named_parameters(recurse=False):
                if is_norm:
                    p.fill_(1.0 if pname == "weight" else 0.0)
                elif p.ndim >= 2:
                    p.normal_(0.0, 0.02)
                else:
                    p.zero_()
        for name, buf in model.named_buffers():
            if "pos_embed" in name:
                buf.data = buf.data.to(dtype)
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU: a smoke run of this script")
    ap.add_argument("--batches", default="8,16,32,64", help="scoring batch sizes besides 1")
    ap.add_argument("--gen-batches", default="32,64", help="generation batch sizes besides 1")
    ap.add_argument("--new-tokens", type=int, default=128, help="new tokens per pair in the generation runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=None, help="preprocessing threads (default: CPUs, max 8)")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--no-baseline", action="store_true", help="skip the original-way peer")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from cdbench.models.mllm.mplug import MPLUGOwl2CDModel
    from cdbench.models.mplug_owl2 import MPLUGOwl2Config, build_tiny_mplug_owl2, build_tiny_tokenizer
    from cdbench.models.mplug_owl2.image_processing import MPLUGOwl2ImageProcessor

    if args.tiny:
        args.device = "cpu"
        args.batches, args.gen_batches = "2,4", "4"
        args.new_tokens, args.repeats = min(args.new_tokens, 8), 1
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tmp = Path(tempfile.mkdtemp(prefix="bench_mllm_"))
    if args.tiny:
        folder = build_tiny_mplug_owl2(tmp / "tiny", seed=0)
        config = MPLUGOwl2Config.from_pretrained(folder)
    else:
        config = MPLUGOwl2Config()  # the reference defaults = the released 7B models' shape
        folder = tmp / "tokenizer"
        folder.mkdir()
        build_tiny_tokenizer(folder, vocab_size=4096)  # ids < 32000; level words single tokens
    config._attn_implementation = "sdpa"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_size = config.vision_config.image_size
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    workers = args.workers
    proc = MPLUGOwl2ImageProcessor(size=image_size, workers=2)
    cd = MPLUGOwl2CDModel.from_components(model, tokenizer, proc, name="mplug-owl2-7b-random" if not args.tiny
                                          else "mplug-owl2-tiny-random", batch_size=1, workers=workers,
                                          max_new_tokens=args.new_tokens)
    text_tokens = sum(1 for t in cd._prompt_ids["score"] if t >= 0)
    fpp = flops_per_pair(config, text_tokens)
    peak = peak_tflops(device, args.peak_tflops)
    images = synthetic_images(16, args.image_size)
    batches = [int(b) for b in args.batches.split(",") if b]
    pairs = [(images[i % 16], images[(5 * i + 3) % 16]) for i in range(64)]
    print(f"model {n_params / 1e9:.2f} B params on {device} ({dtype}), built in {build_s:.1f} s; "
          f"{fpp / 1e12:.3f} TFLOP per pair; peak {peak} TFLOP/s", flush=True)

    def mfu(pairs_per_s: float) -> float | None:
        return None if not peak else fpp * pairs_per_s / (peak * 1e12)

    results: dict = {"benchmark": "bench_mllm", "mode": "tiny-cpu-smoke" if args.tiny else "7b-shaped",
                     "device": str(device), "dtype": str(dtype).replace("torch.", ""),
                     "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                     "params": n_params, "image_size_in": args.image_size, "image_size_model": image_size,
                     "text_tokens": text_tokens, "llm_positions": text_tokens + 2 * config.image_tokens,
                     "flops_per_pair": fpp, "peak_bf16_tflops": peak, "model_build_s": build_s,
                     "preprocessing_workers": cd._get_runner().workers, "repeats": args.repeats,
                     "score": {}, "score_model_only": {}, "generation": {}}
    if args.out:
        out = Path(args.out)
    elif args.tiny:
        out = RESULTS / "bench_mllm_cpu_smoke.json"
    else:
        tag = re.sub(r"[^a-z0-9]+", "-", (results["gpu"] or str(device)).lower()).strip("-")
        out = RESULTS / f"bench_mllm_{tag}.json"

    def save(complete: bool) -> None:
        """Written after each section, so a run stopped by a time limit keeps what it measured."""
        results["complete"] = complete
        results["targets_h100"] = {"score_end_to_end_pairs_per_s": 120, "generation_batched_tokens_per_s": 1000}
        results["anchors_original_h100"] = ANCHORS_H100
        results["versions"] = environment_versions()
        results["load_average"] = list(os.getloadavg())
        atomic_write_json(out, results)

    # --- scoring, end to end ----------------------------------------------------------------------
    for bs in [1, *batches]:
        n = (4 if args.tiny else 32) if bs == 1 else max(8 * bs, 64 if not args.tiny else 8)
        work = [pairs[i % len(pairs)] for i in range(n)]
        cd.batch_size = bs
        try:
            cd.score(work[:bs])  # warm-up (kernels, allocator)
            reset_peak(device)
            times = timed(lambda w=work: cd.score(w), device, args.repeats)
        except RuntimeError as e:
            if not is_oom(e):
                raise
            results["score"][f"batch_{bs}"] = {"oom": True}
            print(f"score batch {bs}: out of memory", flush=True)
            break
        best = min(times)
        pps = n / best
        results["score"][f"batch_{bs}"] = {"pairs": n, "seconds": times, "pairs_per_s": pps,
                                           "pairs_per_s_median": n / statistics.median(times), "mfu": mfu(pps),
                                           "peak_memory_gib": peak_gib(device),
                                           "batch_size_used": cd.batch_size}
        print(f"score end-to-end batch {bs}: {pps:.1f} pairs/s  MFU {mfu(pps)}  peak {peak_gib(device)} GiB",
              flush=True)

        # the model alone on the same prepared batch
        inputs = cd._prepare([(a, b) for a, b in work[:bs]], "score")

        def fwd(inp=inputs):
            with torch.inference_mode():
                cd._last_logits(inp)

        fwd()
        t_model = min(timed(fwd, device, max(args.repeats, 3)))
        results["score_model_only"][f"batch_{bs}"] = {"pairs_per_s": bs / t_model, "mfu": mfu(bs / t_model)}
        t_prep = min(timed(lambda w=work[:bs]: cd._prepare(list(w), "score"), device, 2))
        results["score_model_only"][f"batch_{bs}"]["preprocess_ms_per_pair_one_thread"] = 1000 * t_prep / bs
        save(False)

    ok = {k: v for k, v in results["score"].items() if "pairs_per_s" in v}
    best_key = max(ok, key=lambda k: ok[k]["pairs_per_s"])
    results["score_best"] = {"batch": best_key, **ok[best_key]}

    # --- generation -------------------------------------------------------------------------------
    gen_batches = [1, *[int(b) for b in args.gen_batches.split(",") if b]]
    for bs in gen_batches:
        inputs = cd._prepare([pairs[i % len(pairs)] for i in range(bs)], "describe")
        dev_inputs = cd._to_device(inputs)

        def gen(new, inp=dev_inputs):
            with torch.inference_mode():
                return cd.model.generate(inp["input_ids"], images=inp["images"], attention_mask=inp["attention_mask"],
                                         max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                         pad_token_id=cd.pad_token_id, eos_token_id=tokenizer.eos_token_id)

        try:
            gen(2)
            reset_peak(device)
            t_prefill = min(timed(lambda: gen(1), device, 2))
            times = timed(lambda: gen(args.new_tokens), device, max(1, args.repeats - 1))
        except RuntimeError as e:
            if not is_oom(e):
                raise
            results["generation"][f"batch_{bs}"] = {"oom": True}
            break
        t = min(times)
        tokens = bs * args.new_tokens
        results["generation"][f"batch_{bs}"] = {
            "new_tokens_per_pair": args.new_tokens, "seconds": times, "prefill_s": t_prefill,
            "tokens_per_s": tokens / t,
            "decode_tokens_per_s": bs * (args.new_tokens - 1) / (t - t_prefill) if t > t_prefill else None,
            "peak_memory_gib": peak_gib(device)}
        print(f"generation batch {bs}: {tokens / t:.1f} tokens/s (decode only "
              f"{results['generation'][f'batch_{bs}']['decode_tokens_per_s']})", flush=True)
        save(False)

    # --- the peer: the original's way on this stack -----------------------------------------------
    if not args.no_baseline:
        peer_dtype = torch.float16 if device.type == "cuda" else torch.float32
        model.to(peer_dtype)
        config._attn_implementation = "eager"
        peer = MPLUGOwl2CDModel.from_components(model, tokenizer, proc, name="original-way", batch_size=1,
                                                workers=0, dtype=peer_dtype, attn_implementation="eager")
        n = 16 if not args.tiny else 4
        work = pairs[:n]
        peer.score(work[:1])
        reset_peak(device)
        times = timed(lambda: peer.score(work), device, max(1, args.repeats - 1))
        pps = n / min(times)
        results["original_way"] = {"batch": 1, "dtype": str(peer_dtype).replace("torch.", ""), "attention": "eager",
                                   "preprocessing": "in the calling thread", "pairs": n, "seconds": times,
                                   "pairs_per_s": pps, "peak_memory_gib": peak_gib(device)}
        results["speedup_best_vs_original_way"] = results["score_best"]["pairs_per_s"] / pps
        print(f"original way: {pps:.1f} pairs/s; best ours {results['score_best']['pairs_per_s']:.1f} "
              f"({results['speedup_best_vs_original_way']:.1f}x)", flush=True)

    if args.tiny:
        results["note"] = ("smoke run of this script with a tiny random model on the CPU (checks that every "
                           "measurement runs); not a performance result: run --device cuda for those")
    save(True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
