"""The training loop on Hugging Face ``accelerate``: one GPU, several GPUs, several nodes, DeepSpeed, FSDP.

Run it with ``cdbench finetune ...`` (one process) or ``accelerate launch [--config_file FILE]
-m cdbench finetune ...`` (``accelerate_configs/`` ships DDP, DeepSpeed ZeRO-2/3 and FSDP files);
the engine (data-parallel sharding, gradient synchronisation, DeepSpeed / FSDP wrapping, mixed
precision, checkpoint files) is ``accelerate``'s.

What the loop guarantees:

- **The loss is the mean token cross-entropy of the global batch.** Each optimizer step covers
  ``per_device_batch_size x gradient_accumulation_steps x processes`` items; the loss of every
  micro-batch is its summed token loss divided by the number of supervised tokens of the whole
  step (counted on every process first), so the gradient does not depend on how the global batch
  is split across processes and accumulation steps (``num_items_in_batch`` in ``transformers``).
  Two processes with half the batch each reach the weights one process reaches.
- **Seeded and resumable.** Every ``save_steps`` steps, ``accelerator.save_state`` writes the
  trainable weights, optimizer, scheduler and RNG states to ``out/checkpoints/step-NNNNNNNN``
  and then ``trainer_state.json`` (written last: a checkpoint without it is incomplete and
  ignored). A rerun of the same command continues from the newest complete checkpoint: same epoch
  order (the shuffle is seeded per epoch), the batches already seen skipped, the log truncated to
  the checkpoint, so an interrupted run ends with the weights of an uninterrupted one.
- **Progress and a log.** A tqdm bar shows loss, learning rate and samples/s; ``train_log.jsonl``
  gets one line per ``logging_steps`` (step, epoch, loss, lr, grad norm, samples/s, tokens).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from cdbench.errors import DataError
from cdbench.finetune.config import FinetuneConfig
from cdbench.finetune.data import TrainingSet, count_supervised, load_training_items
from cdbench.finetune.engine import check_engine, make_accelerator
from cdbench.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "finetune_config.yaml"
_RUN_IDENTITY = ("model", "dataset", "split", "tasks", "method", "lora_r", "lora_alpha", "lora_target_modules",
                 "tune_visual_abstractor", "freeze_vision_model", "seed")
"""Settings a resumed run must share with the checkpoint it continues."""


@dataclass
class TrainResult:
    """What a run produced."""

    out: Path
    global_step: int
    total_steps: int
    last_loss: float | None
    exports: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class EpochShuffleSampler:
    """A seeded permutation of ``range(n)``, a new one per epoch (``set_epoch``), the same on every
    process (``accelerate`` then shards the batches), independent of the global RNG.

    With ``lengths``, the items of each optimizer step (``processes x batch x accumulation``
    consecutive items of the permutation) are re-arranged so that each micro-batch holds items of
    similar length and the processes get similar token totals (the original's
    ``group_by_modality_length``: sort a mega-batch by length, split it into even chunks). Which
    items make up each step is unchanged, and the loss is normalised by the tokens of the whole step,
    so grouping only removes padding; it does not change what is learned.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, lengths: Sequence[int] | None = None,
                 batch_size: int = 1, world: int = 1, accumulation: int = 1):
        self.n, self.seed, self.shuffle, self.epoch = int(n), int(seed), shuffle, 0
        self.lengths = list(lengths) if lengths is not None else None
        self.batch_size, self.world, self.accumulation = int(batch_size), int(world), int(accumulation)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def _group(self, order: list[int]) -> list[int]:
        b, w = self.batch_size, self.world
        step = b * w * self.accumulation
        out: list[int] = []
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            if len(chunk) < step:  # a last, partial step keeps accelerate's own split
                out.extend(chunk)
                break
            chunk.sort(key=lambda i: -self.lengths[i])
            for m in range(self.accumulation):  # micro-batch m of every process: similar lengths ...
                group = chunk[m * b * w:(m + 1) * b * w]
                ranks: list[list[int]] = [[] for _ in range(w)]
                totals = [0] * w
                for i in group:  # ... and balanced totals across processes (longest first, to the lightest)
                    r = min((r for r in range(w) if len(ranks[r]) < b), key=lambda r: totals[r])
                    ranks[r].append(i)
                    totals[r] += self.lengths[i]
                for r in range(w):  # accelerate gives batch (m * w + r) of this step to process r
                    out.extend(ranks[r])
        return out

    def __iter__(self):
        import torch

        if not self.shuffle:
            order = list(range(self.n))
        else:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        if self.lengths is not None:
            order = self._group(order)
        return iter(order)


def checkpoint_dirs(out: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (with ``trainer_state.json``) under ``out/checkpoints``, oldest first."""
    root = Path(out) / CHECKPOINTS_DIR
    found = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and d.name.startswith("step-") and (d / STATE_FILE).is_file():
                try:
                    found.append((int(d.name[5:]), d))
                except ValueError:
                    continue
    return sorted(found)


def _optimizer(model, config: FinetuneConfig):
    """AdamW over the trainable parameters; with weight decay, biases and norm weights are not
    decayed (``transformers.Trainer``'s grouping)."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    kw = {"lr": config.learning_rate, "betas": (config.adam_beta1, config.adam_beta2), "eps": config.adam_epsilon}
    if torch.cuda.is_available():  # one fused kernel per step instead of a loop over the parameters
        try:
            return torch.optim.AdamW(groups, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, **kw)


def _scheduler(optimizer, config: FinetuneConfig, total_steps: int):
    from transformers import get_scheduler

    name = config.lr_scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=config.warmup_steps(total_steps),
                         num_training_steps=total_steps)


def make_encoder(family: str, folder: str | Path, config: FinetuneConfig):
    """The encoder (item + images -> supervised example) of a base model folder."""
    from cdbench.errors import ModelError

    if family == "mplug_owl2":
        from cdbench.finetune.encoders import MplugOwl2Encoder

        return MplugOwl2Encoder.from_folder(folder, image_aspect_ratio=config.aspect_mode(family),
                                            max_length=config.model_max_length, image_position=config.image_position)
    from transformers import AutoProcessor

    from cdbench.finetune.encoders import ChatTemplateEncoder

    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{folder}: cannot load the processor ({e})") from None
    return ChatTemplateEncoder(processor, image_aspect_ratio=config.aspect_mode(family),
                               max_length=config.model_max_length, image_position=config.image_position)


def supervised_loss_sum(model, batch: dict):
    """``(summed token cross-entropy, number of supervised tokens)`` of one micro-batch.

    The model's own loss is the mean over the supervised tokens (``CrossEntropyLoss(ignore_index=-100)``
    on the shifted, image-expanded labels, as the original ``MPLUGOwl2LlamaForCausalLM`` and every
    ``transformers`` causal LM compute it); times the count it is the sum, which the loop divides by
    the token count of the whole optimizer step. A micro-batch without targets contributes zero.
    """
    n = count_supervised(batch["labels"])
    out = model(**batch)
    return (out.loss.float() * n if n else out.logits.sum() * 0.0), n


def _finite(x: float) -> float | None:
    """A JSON-safe number: None for NaN / inf (a diverged step is logged, not a crash)."""
    return float(x) if math.isfinite(float(x)) else None


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines of steps <= ``step`` (a resumed run rewrites what came after)."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))


def run_finetune(config: FinetuneConfig, accelerator=None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` and export the result to ``config.out``.

    Works in one process and under ``accelerate launch`` / ``torchrun`` (every process runs this).
    """
    import torch
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm

    from cdbench.finetune.export import export_all
    from cdbench.finetune.model_setup import load_base_model, model_family, prepare_for_training
    from cdbench.versions import environment_versions

    if not config.model or not config.dataset or not config.out:
        raise DataError("fine-tuning needs model, dataset and out")
    out = Path(config.out)
    k = config.gradient_accumulation_steps
    if accelerator is None:
        accelerator = make_accelerator(config)
    main = accelerator.is_main_process
    check_engine(accelerator, config)
    set_seed(config.seed)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = bool(config.tf32)
        torch.backends.cudnn.allow_tf32 = bool(config.tf32)

    family = model_family(config.model)
    encoder = make_encoder(family, config.model, config)
    items, splits = load_training_items(config.dataset, config.tasks, config.split, config.max_items)
    train_set = TrainingSet(items, splits, encoder, config.dataset)
    train_set.check_images()

    storage = config.precision if config.is_lora else "fp32"
    model = load_base_model(config.model, family, dtype=storage, attn_implementation=config.attn_implementation)
    model, summary = prepare_for_training(model, config, family)
    summary.update(items=len(items), items_per_task={t: sum(1 for i in items if i.task == t) for t in config.tasks},
                   skipped_rows=splits.get("skipped", {}))

    lengths = [len(i.prompt.split()) + len(i.answer.split()) for i in items] if config.group_by_length else None
    sampler = EpochShuffleSampler(len(train_set), config.seed, lengths=lengths,
                                  batch_size=config.per_device_batch_size, world=accelerator.num_processes,
                                  accumulation=k)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=config.per_device_batch_size, sampler=sampler, collate_fn=encoder.collate,
        num_workers=config.dataloader_num_workers, generator=torch.Generator().manual_seed(config.seed),
        persistent_workers=False, pin_memory=torch.cuda.is_available())
    optimizer = _optimizer(model, config)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    world = accelerator.num_processes
    steps_per_epoch = max(1, math.ceil(len(loader) / k))
    total = config.max_steps or max(1, math.ceil(config.num_train_epochs * steps_per_epoch))
    n_epochs = math.ceil(total / steps_per_epoch)
    scheduler = _scheduler(optimizer, config, total)
    accelerator.register_for_checkpointing(scheduler)
    sharded = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
    if not sharded:  # checkpoints hold the trained parameters only (LoRA: megabytes, not the base model)
        def _keep_trainable(models, weights, _dir):
            for m, w in zip(models, weights):
                keep = {n for n, p in m.named_parameters() if p.requires_grad}
                for key in [x for x in w if x not in keep]:
                    del w[key]

        accelerator.register_save_state_pre_hook(_keep_trainable)
    save_kwargs = {"exclude_frozen_parameters": True} if accelerator.distributed_type == DistributedType.DEEPSPEED \
        else {}
    load_kwargs = {"load_module_strict": False} if accelerator.distributed_type == DistributedType.DEEPSPEED \
        else ({} if accelerator.distributed_type == DistributedType.FSDP else {"strict": False})

    # ---------------------------------------------------------------- resume
    global_step, epoch0, consumed = 0, 0, 0
    previous = checkpoint_dirs(out) if config.resume else []
    if previous:
        _, ckpt = previous[-1]
        state = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
        saved_config, now = state.get("config", {}), config.to_dict()
        changed = [name for name in _RUN_IDENTITY if name in saved_config and saved_config[name] != now[name]]
        if changed:
            shown = ", ".join(f"{name}={saved_config[name]!r}" for name in changed)
            raise DataError(f"{out} holds a run with other {', '.join(changed)} ({shown}); "
                            "use another --out or --no-resume")
        if int(state.get("world_size", world)) * int(state.get("per_device_batch_size", config.per_device_batch_size)) \
                != world * config.per_device_batch_size:
            raise DataError(f"{ckpt}: saved with a global micro-batch of "
                            f"{state.get('world_size')} x {state.get('per_device_batch_size')}; resume with the same "
                            "number of processes and per_device_batch_size (or start a new --out)")
        accelerator.load_state(str(ckpt), **load_kwargs)
        global_step, epoch0, consumed = int(state["global_step"]), int(state["epoch"]), int(state["micro_batches"])
        if consumed >= len(loader):
            epoch0, consumed = epoch0 + 1, 0
        if main:
            _truncate_log(out / LOG_FILE, global_step)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        import yaml

        atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    accelerator.wait_for_everyone()

    saved = [global_step if previous else -1]

    def save_checkpoint(step: int, epoch: int, micro: int, loss: float | None) -> None:
        saved[0] = step
        ckpt = out / CHECKPOINTS_DIR / f"step-{step:08d}"
        if main and ckpt.exists():
            shutil.rmtree(ckpt)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(ckpt), **save_kwargs)
        accelerator.wait_for_everyone()
        if main:
            atomic_write_json(ckpt / STATE_FILE, {
                "global_step": step, "total_steps": total, "epoch": epoch, "micro_batches": micro,
                "world_size": world, "per_device_batch_size": config.per_device_batch_size,
                "gradient_accumulation_steps": k, "loss": loss, "config": config.to_dict()})
            done = checkpoint_dirs(out)
            limit = config.save_total_limit
            if limit is not None and len(done) > limit:
                for _, d in done[:len(done) - limit]:
                    shutil.rmtree(d, ignore_errors=True)
        accelerator.wait_for_everyone()

    if main and config.progress:
        import sys

        what = (f"LoRA r {config.lora_r} on {len(summary['lora_targets'])} modules" if config.is_lora
                else "full fine-tuning")
        per_task = ", ".join(f"{n} {t}" for t, n in summary["items_per_task"].items())
        trained, total_params = summary["trainable_parameters"], summary["total_parameters"]
        print(f"cdbench finetune: {len(items)} items ({per_task}), {trained:,} of {total_params:,} parameters "
              f"trained ({what}), {total} steps of {world} x {config.per_device_batch_size} x {k} items"
              + (f", resuming at step {global_step}" if global_step else ""), file=sys.stderr)

    # ---------------------------------------------------------------- train
    device = accelerator.device
    bar = tqdm(total=total, initial=global_step, desc="finetune", unit="step", dynamic_ncols=True,
               disable=not (main and config.progress))
    last_loss: float | None = None
    model.train()
    t_last, samples_since = time.perf_counter(), 0
    cur_epoch, cur_micro = epoch0, consumed
    for epoch in range(epoch0, n_epochs):
        if global_step >= total:
            break
        skip = consumed if epoch == epoch0 else 0
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        sampler.set_epoch(epoch)
        if hasattr(epoch_loader, "set_epoch"):  # accelerate's loaders re-seed the sampler with their own counter
            epoch_loader.set_epoch(epoch)
        batches = iter(epoch_loader)
        micro = skip
        while global_step < total:
            window = list(islice(batches, k))
            if not window:
                break
            counts = [count_supervised(b["labels"]) for b in window]
            stats = torch.tensor([float(sum(counts)), float(sum(int(b["labels"].shape[0]) for b in window))],
                                 device=device, dtype=torch.float64)
            stats = accelerator.reduce(stats, reduction="sum")
            n_tokens, n_samples = float(stats[0]), int(stats[1])
            scale = world * k / max(n_tokens, 1.0)
            accelerator.step = k - len(window)  # the window's last micro-batch synchronises and steps
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            grad_norm, lr = None, float("nan")
            for batch in window:
                with accelerator.accumulate(model):
                    token_sum, _ = supervised_loss_sum(model, batch)
                    accelerator.backward(token_sum * scale)
                    loss_sum += token_sum.detach().double()
                    if accelerator.sync_gradients:
                        if config.max_grad_norm and config.max_grad_norm > 0:
                            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (logged)
                        optimizer.step()
                        if not accelerator.optimizer_step_was_skipped:
                            scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
            micro += len(window)
            global_step += 1
            loss = float(accelerator.reduce(loss_sum, reduction="sum")) / max(n_tokens, 1.0)
            last_loss = loss
            samples_since += n_samples
            if global_step % config.logging_steps == 0 or global_step == total:
                now = time.perf_counter()
                rate = samples_since / max(now - t_last, 1e-9)
                t_last, samples_since = now, 0
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", samples_s=f"{rate:.2f}")
                if main:
                    append_jsonl(out / LOG_FILE, [{
                        "step": global_step, "epoch": round(epoch + micro / max(len(loader), 1), 4),
                        "loss": _finite(loss), "lr": _finite(lr),
                        "grad_norm": None if grad_norm is None else _finite(float(grad_norm)),
                        "samples_per_s": rate, "tokens": int(n_tokens), "samples": n_samples, "time": time.time()}])
            bar.update(1)
            if global_step % config.save_steps == 0 and global_step < total:
                save_checkpoint(global_step, epoch, micro, loss)
            cur_epoch, cur_micro = epoch, micro
        consumed = 0
    bar.close()
    if saved[0] != global_step:
        save_checkpoint(global_step, cur_epoch, cur_micro, last_loss)

    # ---------------------------------------------------------------- export
    record = {"base_model": str(Path(config.model).resolve()), "dataset": str(Path(config.dataset).resolve()),
              "global_step": global_step, "total_steps": total, "last_loss": last_loss, "summary": summary,
              "config": config.to_dict(), "versions": environment_versions()}
    exports = export_all(accelerator, model, config, family, record)
    accelerator.wait_for_everyone()
    return TrainResult(out=out, global_step=global_step, total_steps=total, last_loss=last_loss, exports=exports,
                       summary=summary)
