"""Fine-tuning throughput of the CD-Reasoning LoRA recipe on a 7B-shaped mPLUG-Owl2 (random bf16 weights).

What is measured (model only, synthetic pairs already on the device, seeded):
- LoRA training samples/s of the recipe exactly as ``cdbench finetune`` sets it up
  (:func:`cdbench.finetune.model_setup.prepare_for_training`: LoRA r 128 / alpha 256 on ``q_proj`` and
  ``v_proj.multiway.1``, abstractor trained in float32, vision frozen, bf16 weights + autocast,
  AdamW, gradient checkpointing, 32 pairs per device), and the same step at other batch sizes /
  without checkpointing, side by side in one run;
- peak GPU memory (``torch.cuda.max_memory_allocated``);
- MFU: the FLOPs of one training step *without* recomputation (counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on a step with checkpointing off: forward, input
  gradients through frozen layers, weight gradients of the trained ones) times samples/s, over the
  GPU's dense bf16 peak (H100/H200 SXM 989 TFLOP/s, A100 312).

Also the CPU side: items/s one data-loading worker prepares (two 1024 x 1024 PNG photos decoded,
padded, resized to 448, tokenised), to size ``dataloader_num_workers`` so the GPU never waits.

Each item is a scores item of M-SPCD: two 448 px images (2 x 65 image rows after the abstractor)
and a prompt of the real length (``USER: <img><img>\\n<question> ASSISTANT: The color difference
between these two images is <level>.</s>``, LLaMA tokenizer: 37 text tokens, the last 13 supervised).

Full fine-tuning of the 7B model does not fit one 80 GB GPU with AdamW (16 bytes per parameter:
~115 GB); run it with ``accelerate_configs/deepspeed_zero3.yaml`` on several GPUs.

Usage::

    python benchmarks/bench_finetune.py --device cuda            # 7B on a GPU (H100: ~15 min)
    python benchmarks/bench_finetune.py --tiny                   # CPU smoke run of the same code
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdbench.finetune.config import FinetuneConfig  # noqa: E402
from cdbench.finetune.data import IGNORE_INDEX  # noqa: E402
from cdbench.finetune.model_setup import prepare_for_training  # noqa: E402
from cdbench.finetune.trainer import supervised_loss_sum  # noqa: E402
from cdbench.io import atomic_write_json  # noqa: E402
from cdbench.versions import environment_versions  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0}
PROMPT_TOKENS_BEFORE_IMAGES = 3   # BOS "USER" ":"
PROMPT_TOKENS_AFTER_IMAGES = 21   # "\n" + question + " ASSISTANT:"
ANSWER_TOKENS = 13                # "The color difference between these two images is moderate.</s>"


def build_model(tiny: bool, device: str, dtype: torch.dtype):
    """A randomly initialised mPLUG-Owl2: the 7B release shape (``MPLUGOwl2Config()``) or a tiny one."""
    from cdbench.models.mplug_owl2 import MPLUGOwl2Config, MPLUGOwl2LlamaForCausalLM

    if tiny:
        config = MPLUGOwl2Config(
            vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, visual_config={
                "visual_model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "image_size": 56, "patch_size": 14},
                "visual_abstractor": {"num_learnable_queries": 8, "hidden_size": 32, "encoder_hidden_size": 32,
                                      "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                                      "grid_size": 4}})
    else:
        config = MPLUGOwl2Config()
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the storage dtype: no float32 copy of 7B weights
    try:
        with torch.device(device):
            model = MPLUGOwl2LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    return model.to(dtype)


def make_batch(config, batch_size: int, device: str, seed: int = 0) -> dict:
    """``batch_size`` scores items: token ids with two -200 placeholders, labels on the answer only."""
    from cdbench.models.mplug_owl2 import IMAGE_TOKEN_INDEX

    g = torch.Generator().manual_seed(seed)
    vocab = config.vocab_size
    before = torch.randint(3, vocab, (batch_size, PROMPT_TOKENS_BEFORE_IMAGES), generator=g)
    before[:, 0] = 1
    after = torch.randint(3, vocab, (batch_size, PROMPT_TOKENS_AFTER_IMAGES), generator=g)
    answer = torch.randint(3, vocab, (batch_size, ANSWER_TOKENS), generator=g)
    answer[:, -1] = 2
    images = torch.full((batch_size, 2), IMAGE_TOKEN_INDEX)
    ids = torch.cat([before, images, after, answer], dim=1)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, -ANSWER_TOKENS:] = answer
    size = config.visual_config["visual_model"]["image_size"]
    pixels = torch.randn((2 * batch_size, 3, size, size), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": labels.to(device), "images": pixels.to(device)}


def data_pipeline_rate(tiny: bool, seconds: float = 3.0) -> dict:
    """Items/s one data-loading process turns into training examples: two PNG photos decoded
    (1024 x 1024 as SPCD; 64 px with --tiny), padded to a square, resized to 448 px and normalised,
    the conversation tokenised and masked (:class:`~cdbench.finetune.encoders.MplugOwl2Encoder`)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from cdbench.data.images import load_image
    from cdbench.finetune.data import TrainItem, score_answer
    from cdbench.finetune.encoders import MplugOwl2Encoder
    from cdbench.models.mllm.settings import SCORE_QUESTION
    from cdbench.models.mplug_owl2.tiny import build_tiny_mplug_owl2

    side, size = (64, 56) if tiny else (1024, 448)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_mplug_owl2(Path(tmp) / "m", image_size=size)  # its tokenizer and preprocessor
        rng = np.random.default_rng(0)
        files = []
        for k in range(4):
            arr = (rng.random((side // 16, side // 16, 3)) * 255).astype(np.uint8)
            path = Path(tmp) / f"I{k:04d}_01_01.png"
            Image.fromarray(arr).resize((side, side), Image.Resampling.BILINEAR).save(path)
            files.append(path)
        enc = MplugOwl2Encoder.from_folder(folder, image_aspect_ratio="pad")
        item = TrainItem("scores", "a+b", SCORE_QUESTION, score_answer("moderate"), 0)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a, b = files[n % 4], files[(n + 1) % 4]
            enc(item, (load_image(a), load_image(b)))
            n += 1
        dt = time.perf_counter() - t0
    return {"image_side": side, "model_image_size": size, "items": n, "items_per_s_per_worker": n / dt}


def _autocast(device: str, dtype: torch.dtype):
    if dtype == torch.float32:
        return torch.autocast(device_type=device.split(":")[0], enabled=False)
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def train_step(model, optimizer, batch, device: str, dtype: torch.dtype) -> float:
    with _autocast(device, dtype):
        total, n = supervised_loss_sum(model, batch)
        loss = total / max(n, 1)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _set_checkpointing(model, on: bool) -> None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if on:
        if hasattr(inner, "activation_checkpointing_enable"):
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        (getattr(inner, "activation_checkpointing_disable", None) or inner.gradient_checkpointing_disable)()


def step_flops(model, optimizer, config, device: str, dtype: torch.dtype) -> float:
    """FLOPs of one training step for one item, without recomputation (checkpointing off)."""
    from torch.utils.flop_counter import FlopCounterMode

    _set_checkpointing(model, False)
    batch = make_batch(config, 1, device, seed=99)
    with _autocast(device, dtype), FlopCounterMode(display=False) as counter:
        total, n = supervised_loss_sum(model, batch)
        (total / max(n, 1)).backward()
    optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def measure(model, optimizer, config, batch_size: int, checkpointing: bool, steps: int, warmup: int,
            device: str, dtype: torch.dtype) -> dict:
    _set_checkpointing(model, checkpointing)
    batch = make_batch(config, batch_size, device, seed=batch_size)
    cuda = device.startswith("cuda")
    try:
        for _ in range(warmup):
            train_step(model, optimizer, batch, device, dtype)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        losses = [train_step(model, optimizer, batch, device, dtype) for _ in range(steps)]
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    except torch.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.empty_cache()
        return {"batch_size": batch_size, "gradient_checkpointing": checkpointing, "error": "out of memory"}
    out = {"batch_size": batch_size, "gradient_checkpointing": checkpointing, "steps": steps,
           "seconds": dt, "samples_per_s": batch_size * steps / dt, "last_loss": losses[-1]}
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny model on the CPU (smoke run of this script)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes to measure with checkpointing (default: 32 16 8 for 7B)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device")
    p.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/bench_finetune_<dev>.json)")
    args = p.parse_args(argv)
    device = "cpu" if args.tiny else args.device
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    steps = args.steps or (3 if args.tiny else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    sizes = args.batch_sizes or ([2] if args.tiny else [32, 16, 8])
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True

    recipe = FinetuneConfig(precision="bf16" if dtype == torch.bfloat16 else "fp32")
    t0 = time.perf_counter()
    model = build_model(args.tiny, device, dtype)
    build_s = time.perf_counter() - t0
    model, summary = prepare_for_training(model, recipe, "mplug_owl2")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    config = model.get_base_model().config

    flops = step_flops(model, optimizer, config, device, dtype)
    runs = []
    for b, checkpointing in [*((b, True) for b in sizes), (sizes[-1], False)]:
        runs.append(measure(model, optimizer, config, b, checkpointing, steps, warmup, device, dtype))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in runs[-1].items()}, flush=True)
    pipeline = data_pipeline_rate(args.tiny, seconds=2.0 if args.tiny else 5.0)
    peak = args.peak_tflops
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    if peak is None and gpu:
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu), None)
    for r in runs:
        if "samples_per_s" in r:
            r["tflops_per_s"] = flops * r["samples_per_s"] / 1e12
            if peak:
                r["mfu"] = r["tflops_per_s"] / peak
    result = {
        "benchmark": "bench_finetune", "model": "mplug-owl2 tiny" if args.tiny else "mplug-owl2 7B shape (random)",
        "device": gpu or "cpu", "dtype": str(dtype).replace("torch.", ""), "peak_bf16_tflops": peak,
        "recipe": {k: v for k, v in recipe.to_dict().items() if k in (
            "method", "lora_r", "lora_alpha", "lora_dropout", "tune_visual_abstractor", "learning_rate",
            "per_device_batch_size", "precision", "gradient_checkpointing")},
        "trainable_parameters": summary["trainable_parameters"], "total_parameters": summary["total_parameters"],
        "lora_targets": len(summary["lora_targets"]),
        "sequence": {"text_tokens": PROMPT_TOKENS_BEFORE_IMAGES + PROMPT_TOKENS_AFTER_IMAGES + ANSWER_TOKENS,
                     "supervised_tokens": ANSWER_TOKENS, "images": 2},
        "train_flops_per_item_without_recompute": flops, "model_build_seconds": build_s,
        "runs": runs, "data_pipeline": pipeline, "versions": environment_versions(),
    }
    name = "bench_finetune_cpu_smoke.json" if args.tiny else f"bench_finetune_{device.split(':')[0]}.json"
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / name
    atomic_write_json(out, result)
    for r in runs:
        if "mfu" in r:
            print({"batch_size": r["batch_size"], "gradient_checkpointing": r["gradient_checkpointing"],
                   "mfu": round(r["mfu"], 4)})
    print({"data_pipeline_items_per_s_per_worker": round(pipeline["items_per_s_per_worker"], 2)})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
