"""Dataset builders: SPCD and M-SPCD release files -> Hugging Face dataset folders.

``build_spcd(root, out)`` and ``build_mspcd(spcd_root, annotations_root, out)`` write a folder
that ``datasets.load_dataset(out, "scores")`` (and ``"descriptions"`` for M-SPCD) reads offline;
the recipes are in ``cdbench/builders/recipes`` (the top-level ``builders/`` links to it). Read a built folder with
:mod:`cdbench.data.dataset`.
"""

from cdbench.builders.hub import push_to_hub
from cdbench.builders.mspcd import build_mspcd
from cdbench.builders.spcd import build_spcd

__all__ = ["build_spcd", "build_mspcd", "push_to_hub"]
