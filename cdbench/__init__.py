"""cdbench: the benchmark package for perceptual colour difference between images."""

__version__ = "0.1.0"

from cdbench.models.registry import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models"]
