"""``cdbench reproduce``: the papers' tables from the baselines in ``baselines/``."""

from cdbench.reproduce.runner import ReproducedTable, plan_baseline, reproduce_table
from cdbench.reproduce.specs import TABLES, BaselineSpec, load_spec, load_specs

__all__ = ["TABLES", "BaselineSpec", "ReproducedTable", "load_spec", "load_specs", "plan_baseline",
           "reproduce_table"]
