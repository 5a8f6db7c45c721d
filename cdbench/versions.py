"""Versions recorded in every results file."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

_PACKAGES = ("cdbench", "torch", "numpy", "scipy", "datasets", "transformers", "peft", "accelerate",
             "pillow", "kornia-rs", "scikit-learn", "pycocoevalcap", "bert-score")


def environment_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """``{"python": ..., "platform": ..., <package>: <version>}`` for the installed packages."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.cuda.is_available():
            out["cuda"] = str(torch.version.cuda)
            out["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return out
