"""``cdbench finetune``: fine-tune a multimodal LLM on M-SPCD (the CD-Reasoning recipe, LoRA or full).

One process: ``cdbench finetune --model BASE --dataset DIR --out OUT``. Several GPUs / nodes,
DeepSpeed or FSDP: ``accelerate launch --config_file cdbench/finetune/accelerate_configs/<file>.yaml
-m cdbench finetune ...`` (or ``torchrun ... -m cdbench finetune ...``). Settings: the defaults
are the recipe's; ``--config train.yaml`` sets any of them, and the flags below override both.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune an mPLUG-Owl2 / HF image-text-to-text model on M-SPCD (LoRA or full)",
        description="Fine-tune a multimodal LLM on the scores + descriptions training items of an M-SPCD "
        "folder with the CD-Reasoning recipe (defaults: LoRA r 128 / alpha 256 on q_proj + visual v_proj, "
        "abstractor trained, lr 2e-4 cosine, 3%% warm-up, bf16, gradient checkpointing). Writes OUT/merged "
        "(cdbench.create_model loads it), OUT/lora (CD-Reasoning release layout), OUT/checkpoints, "
        "OUT/train_log.jsonl. Rerunning the same command resumes from the newest checkpoint.")
    p.add_argument("--model", help="base model folder (mPLUG-Owl2 / Q-Align / CD-Reasoning, or any HF "
                   "image-text-to-text checkpoint)")
    p.add_argument("--dataset", help="M-SPCD dataset folder (cdbench build m-spcd) with a train split")
    p.add_argument("--out", help="output folder")
    p.add_argument("--config", metavar="YAML", help="settings file (any field of cdbench.finetune.FinetuneConfig)")
    method = p.add_mutually_exclusive_group()
    method.add_argument("--lora", dest="method", action="store_const", const="lora", help="LoRA (default)")
    method.add_argument("--full", dest="method", action="store_const", const="full", help="full fine-tuning")
    p.add_argument("--freeze-vision", dest="freeze_vision_model", action="store_true", default=None,
                   help="freeze the vision encoder (default: frozen with LoRA, trained with --full)")
    p.add_argument("--train-vision", dest="freeze_vision_model", action="store_false",
                   help="train the vision encoder")
    p.add_argument("--split", help="training split (default: train)")
    p.add_argument("--image-position", choices=("before", "after"),
                   help="images before the prompt (default, the M-SPCD conversations) or after it")
    p.add_argument("--tasks", nargs="+", choices=("scores", "descriptions"), help="configs to mix (default: both)")
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--lora-dropout", type=float)
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    p.add_argument("--epochs", dest="num_train_epochs", type=float)
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", dest="per_device_batch_size", type=int, help="items per device and micro-step")
    p.add_argument("--grad-accum", dest="gradient_accumulation_steps", type=int)
    p.add_argument("--precision", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false", default=None)
    p.add_argument("--save-steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", dest="dataloader_num_workers", type=int, help="data loading processes")
    p.add_argument("--max-items", type=int, help="train on the first N items only (smoke runs)")
    p.add_argument("--export", nargs="+", choices=("merged", "lora"), help="final outputs (default: both)")
    p.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                   help="ignore existing checkpoints in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the default settings as YAML and exit")
    p.set_defaults(func=_run, method=None)


_FIELDS = ("model", "dataset", "out", "method", "freeze_vision_model", "split", "image_position", "tasks", "lora_r",
           "lora_alpha",
           "lora_dropout", "learning_rate", "num_train_epochs", "max_steps", "per_device_batch_size",
           "gradient_accumulation_steps", "precision", "gradient_checkpointing", "save_steps", "seed",
           "dataloader_num_workers", "max_items", "export", "resume")


def config_from_args(args: argparse.Namespace):
    """The run's :class:`~cdbench.finetune.FinetuneConfig`: defaults < ``--config`` file < flags."""
    from cdbench.errors import DataError
    from cdbench.finetune.config import FinetuneConfig

    given = {k: getattr(args, k) for k in _FIELDS if getattr(args, k, None) is not None}
    if args.no_progress:
        given["progress"] = False
    if args.config:
        config = FinetuneConfig.from_yaml(args.config, **given)
    else:
        config = FinetuneConfig.from_dict(given, "options")
    missing = [f"--{name}" for name in ("model", "dataset", "out") if not getattr(config, name)]
    if missing:
        raise DataError(f"finetune needs {', '.join(missing)} (on the command line or in --config)")
    return config


def _run(args: argparse.Namespace) -> int:
    from cdbench.finetune.config import default_config_yaml

    if args.print_config:
        print(default_config_yaml(), end="")
        return 0
    import os
    import sys

    from cdbench.finetune import run_finetune

    result = run_finetune(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {result.global_step}/{result.total_steps} steps, last loss "
              f"{result.last_loss if result.last_loss is None else round(result.last_loss, 4)}; "
              + "; ".join(f"{k}: {v}" for k, v in result.exports.items()), file=sys.stderr)
    return 0
