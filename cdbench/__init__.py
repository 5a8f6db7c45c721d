"""cdbench: the benchmark package for perceptual colour difference between images."""

__version__ = "0.1.0"

# registers model_type mplug_owl2 with the transformers Auto classes, lazily (imports nothing heavy)
from cdbench.models.mplug_owl2._auto import install as _install_mplug_owl2  # noqa: E402
from cdbench.models.registry import create_model, list_models  # noqa: E402

_install_mplug_owl2()

__all__ = ["__version__", "create_model", "list_models"]
