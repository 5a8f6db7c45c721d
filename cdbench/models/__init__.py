"""Models: the interface, the registry and the implementations."""

from cdbench.models.base import CDModel, Pair
from cdbench.models.registry import create_model, list_models, register_folder_loader, register_model

__all__ = ["CDModel", "Pair", "create_model", "list_models", "register_folder_loader", "register_model"]
