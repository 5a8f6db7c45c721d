"""Hugging Face ``evaluate`` modules wrapping :mod:`cdbench.metrics` (optional extra ``evaluate``).

Each sub-folder is a module in the ``evaluate`` library's layout (``<name>/<name>.py`` + card)::

    import evaluate
    from cdbench.hf_evaluate import module_path
    stress = evaluate.load(module_path("stress"))
    stress.compute(predictions=[...], references=[...])          # {"stress": ...} on the 0..100 scale
    corr = evaluate.load(module_path("cd_correlation"))
    corr.compute(predictions=..., references=..., fit="5pl")     # srcc, krcc, plcc, plcc_raw, rmse, stress

The core of cdbench never imports ``evaluate`` (in maintenance mode); only these scripts do.
"""

from __future__ import annotations

from pathlib import Path

MODULES: tuple[str, ...] = ("stress", "cd_correlation")


def module_path(name: str) -> str:
    """Folder of the ``evaluate`` module ``name``, for ``evaluate.load(module_path(name))``."""
    if name not in MODULES:
        raise ValueError(f"unknown module {name!r}; expected one of {', '.join(MODULES)}")
    return str(Path(__file__).resolve().parent / name)
