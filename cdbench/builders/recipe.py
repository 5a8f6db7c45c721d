"""The declarative recipes of the dataset builds (``builders/<name>.yaml`` and the card template)."""

from __future__ import annotations

import os
from pathlib import Path

from cdbench.errors import DataError

RECIPES_DIR = Path(os.environ.get("CDBENCH_RECIPES", Path(__file__).resolve().parent / "recipes"))
"""The recipes, shipped inside the package (``cdbench/builders/recipes``; the checkout's top-level
``builders/`` is a link to it, so an installed cdbench builds too). Override with ``$CDBENCH_RECIPES``."""


def load_recipe(name: str) -> dict:
    """The recipe ``builders/<name>.yaml`` as a dict (source files, splits, level rule, checksums, card)."""
    import yaml

    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise DataError(f"{path}: build recipe not found (set CDBENCH_RECIPES to a folder of recipes)")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(recipe, dict) or recipe.get("name") != name:
        raise DataError(f"{path}: not a build recipe for {name!r}")
    return recipe


def card_template(recipe: dict) -> str:
    """The dataset card template named by the recipe (``string.Template`` syntax)."""
    path = RECIPES_DIR / recipe.get("card", "card.md")
    if not path.is_file():
        raise DataError(f"{path}: card template not found")
    return path.read_text(encoding="utf-8")
