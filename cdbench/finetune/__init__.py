"""Fine-tuning a multimodal LLM on M-SPCD: the CD-Reasoning recipe (LoRA or full) on ``accelerate``.

``cdbench finetune --model BASE --dataset DIR --out OUT`` trains an mPLUG-Owl2 (Q-Align /
CD-Reasoning) checkpoint or any Hugging Face image-text-to-text model on the ``scores`` and
``descriptions`` training items of an M-SPCD folder and writes ``OUT/merged`` (loadable with
``cdbench.create_model``) and ``OUT/lora`` (the CD-Reasoning release layout). Modules:
:mod:`~cdbench.finetune.config` (settings, recipe defaults), :mod:`~cdbench.finetune.data`
(training items), :mod:`~cdbench.finetune.encoders` (conversations -> supervised tokens),
:mod:`~cdbench.finetune.model_setup` (what is trained), :mod:`~cdbench.finetune.trainer` (the
accelerate loop), :mod:`~cdbench.finetune.export` (output folders).
"""

from cdbench.finetune.config import FinetuneConfig, default_config_yaml

__all__ = ["FinetuneConfig", "default_config_yaml", "run_finetune"]


def run_finetune(config: FinetuneConfig, accelerator=None):
    """Train and export (see :func:`cdbench.finetune.trainer.run_finetune`)."""
    from cdbench.finetune.trainer import run_finetune as _run

    return _run(config, accelerator)
