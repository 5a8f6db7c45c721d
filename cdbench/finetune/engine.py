"""The engine of ``cdbench finetune``: an ``accelerate.Accelerator`` for whatever launched the process.

One process, ``torchrun`` or ``accelerate launch`` with a DDP, FSDP2 or DeepSpeed ZeRO-2/3 config
(``accelerate_configs/``), on GPUs (NCCL) or on CPU processes (gloo). Two things accelerate does not
do on a machine without CUDA are done here: FSDP2 (accelerate would fall back to DDP without a word)
and DeepSpeed over gloo on DeepSpeed's CPU accelerator (``cpu=True`` would drop the DeepSpeed config).
The run's settings and the engine's must agree: gradient accumulation, and for DeepSpeed clipping and
micro-batch size too (``"auto"`` values are filled in); a disagreement stops the run in one line.
"""

from __future__ import annotations

import os

from cdbench.errors import DataError
from cdbench.finetune.config import FinetuneConfig

MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}
"""cdbench's ``precision`` setting -> accelerate's ``mixed_precision``."""


def make_accelerator(config: FinetuneConfig):
    """The ``Accelerator`` of a run: the launcher's distributed setup, ``config``'s precision and
    gradient accumulation, the scheduler stepped once per optimizer step."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs

    on_cpu = not torch.cuda.is_available()
    if on_cpu:
        _check_fsdp_without_cuda()
    _allow_new_precision(MIXED_PRECISION[config.precision])
    # Without CUDA, cpu=True makes torchrun / accelerate launch use gloo. accelerate then ignores a
    # DeepSpeed config, so a DeepSpeed launch keeps accelerate's own DeepSpeed path and names gloo as
    # the process-group backend (DeepSpeed runs on its CPU accelerator).
    deepspeed_on_cpu = on_cpu and _deepspeed_launched()
    accelerator = Accelerator(
        cpu=on_cpu and not deepspeed_on_cpu,
        kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")] if deepspeed_on_cpu else None,
        mixed_precision=MIXED_PRECISION[config.precision],
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=config.gradient_accumulation_steps,
                                                                sync_with_dataloader=False),
        step_scheduler_with_optimizer=False)
    _fsdp_on_cpu(accelerator)
    return accelerator


def check_engine(accelerator, config: FinetuneConfig) -> None:
    """Stop (one line) where the engine would train another recipe than ``config`` says."""
    k = config.gradient_accumulation_steps
    if accelerator.gradient_accumulation_steps != k:
        raise DataError(f"the accelerate configuration accumulates gradients over "
                        f"{accelerator.gradient_accumulation_steps} steps but gradient_accumulation_steps={k}; "
                        "make them equal (DeepSpeed: gradient_accumulation_steps in the config file)")
    _check_deepspeed_config(accelerator, config)


def _allow_new_precision(mixed_precision: str) -> None:
    """accelerate keeps one process-wide state whose mixed precision cannot change; a second run with
    another precision in the same single (non-distributed) process, e.g. a notebook, starts afresh."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", mixed_precision) != mixed_precision \
            and int(shared.get("num_processes", 1)) == 1:
        AcceleratorState._reset_state()


def _fsdp_requested() -> bool:
    """Whether ``accelerate launch`` was given an FSDP config (it exports ``ACCELERATE_USE_FSDP``)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _check_fsdp_without_cuda() -> None:
    """FSDP version 1 cannot run on CPU processes (accelerate's FSDP1 plugin needs a GPU-like device):
    say so in one line instead of accelerate's traceback."""
    if _fsdp_requested() and os.environ.get("FSDP_VERSION", "1") != "2":
        raise DataError("FSDP version 1 runs on GPUs only; without CUDA use fsdp_version: 2 "
                        "(cdbench/finetune/accelerate_configs/fsdp.yaml)")


def _deepspeed_launched() -> bool:
    """Whether ``accelerate launch`` started this process with a DeepSpeed config (it exports
    ``ACCELERATE_USE_DEEPSPEED``; its DeepSpeed launcher, torchrun, sets ``LOCAL_RANK``)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and "LOCAL_RANK" in os.environ


def _check_deepspeed_config(accelerator, config: FinetuneConfig) -> None:
    """The DeepSpeed config must do what the run's settings say: ``"auto"`` values are filled from them,
    others must equal them (one line naming both otherwise).

    DeepSpeed itself accumulates gradients (its ``gradient_accumulation_steps``; accelerate silently
    prefers the config's value to cdbench's), clips them (``gradient_clipping``; accelerate's
    ``clip_grad_norm_`` only reads the norm back) and sizes its batches from
    ``train_micro_batch_size_per_gpu``: a mismatch would train another recipe without a word.
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    clip = float(config.max_grad_norm or 0.0)
    wanted = {"gradient_accumulation_steps": (config.gradient_accumulation_steps, "gradient_accumulation_steps"),
              "gradient_clipping": (clip, "max_grad_norm"),
              "train_micro_batch_size_per_gpu": (config.per_device_batch_size, "per_device_batch_size")}
    for key, (value, setting) in wanted.items():
        given = ds.get(key, "auto")
        if given == "auto":
            ds[key] = value
        elif float(given) != float(value):
            raise DataError(f"the DeepSpeed config has {key}: {given} but {setting}={value}; make them equal "
                            f"(or set {key}: auto in the DeepSpeed config)")


def _fsdp_on_cpu(accelerator) -> None:
    """Shard with FSDP on a machine without CUDA when the launch asked for it.

    ``accelerate launch`` with an FSDP config sets ``ACCELERATE_USE_FSDP``, but accelerate turns FSDP on
    only for GPU-like devices: on CPU processes its state stays ``MULTI_CPU`` and the model would be
    wrapped in plain DDP, silently. torch's FSDP2 (``fully_shard``) runs on CPU over gloo, so the state
    is promoted here exactly as ``AcceleratorState`` does it for GPUs (``distributed_type = FSDP``, the
    plugin read from the ``FSDP_*`` variables the launcher set, with the run's mixed precision).
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not _fsdp_requested() or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    plugin = FullyShardedDataParallelPlugin()
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as AcceleratorState does: kept on re-reads
