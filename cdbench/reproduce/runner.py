"""``cdbench reproduce``: run every baseline of a table and write it in the paper's layout."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdbench.errors import CDBenchError, DataError
from cdbench.reproduce.specs import TABLES, BaselineSpec, load_specs
from cdbench.reproduce.tables import TableRow, rows_as_json, to_csv, to_latex, to_markdown


@dataclass
class ReproducedTable:
    table: str
    task: str
    rows: list[TableRow]
    files: dict[str, Path]
    markdown: str


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False


def plan_baseline(spec: BaselineSpec, weights: Mapping[str, str], cuda: bool, allow_cpu: bool = False
                  ) -> tuple[str | None, str | os.PathLike | None, dict[str, Any]]:
    """``(reason_not_to_run, model_argument, options)`` for one baseline here and now."""
    options = dict(spec.settings)
    model_arg: str | os.PathLike | None = spec.model
    if spec.weights:
        path = weights.get(spec.id)
        if not path:
            what = "checkpoint folder" if spec.weights == "folder" else "weights"
            return (f"no {what} (none ship with cdbench and nothing is downloaded; "
                    f"give --weights {spec.id}=PATH)"), None, options
        if not Path(path).exists():
            return f"--weights {spec.id}={path}: no such file or folder", None, options
        if spec.weights == "folder":
            model_arg = path
        else:
            options["weights"] = path
    if spec.gpu and not cuda and not allow_cpu:
        return "needs a GPU (no CUDA device here; --allow-cpu runs it on the CPU, very slowly)", None, options
    if spec.gpu and cuda:
        options.setdefault("device", "cuda")
    return None, model_arg, options


def reproduce_table(table: str, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike = "reproduce", *,
                    split: str = "test", baselines_dir: str | os.PathLike | None = None,
                    weights: Mapping[str, str] | None = None, only: Sequence[str] | None = None,
                    n_boot: int = 1000, seed: int = 0, allow_cpu: bool = False, progress: bool = True,
                    batch_size: int | None = None) -> ReproducedTable:
    """Run the baselines of ``table`` on ``split`` of the built dataset and write
    ``OUT/<table>.md|.tex|.csv|.json``; model runs go to ``OUT/runs/`` (resumable, like
    ``cdbench evaluate``). Baselines that cannot run here stay in the table with the reason."""
    from cdbench.evaluation import evaluate_model
    from cdbench.io import atomic_write_json, atomic_write_text
    from cdbench.versions import environment_versions

    if table not in TABLES:
        raise DataError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
    task = TABLES[table]["task"]
    specs = load_specs(baselines_dir, table)
    if only:
        known = {s.id for s in specs}
        missing = [o for o in only if o not in known]
        if missing:
            raise DataError(f"--only {', '.join(missing)}: not a baseline of {table} "
                            f"(its baselines: {', '.join(sorted(known))})")
        specs = [s for s in specs if s.id in only]
    if not specs:
        raise DataError(f"no baseline lists the table {table!r}")
    unknown_weights = set(weights or {}) - {s.id for s in load_specs(baselines_dir)}
    if unknown_weights:
        raise DataError(f"--weights for unknown baseline(s): {', '.join(sorted(unknown_weights))}")
    cuda = _cuda_available()
    out_dir = Path(out_dir)
    rows: list[TableRow] = []
    for spec in specs:
        reason, model_arg, options = plan_baseline(spec, weights or {}, cuda, allow_cpu)
        if reason:
            rows.append(TableRow(spec.id, spec.name, None, "skipped", reason))
        else:
            try:
                result = evaluate_model(model_arg, dataset_dir, task, split, out_dir / "runs", n_boot=n_boot,
                                        seed=seed, progress=progress, plot=False, model_options=options,
                                        batch_size=batch_size)
                rows.append(TableRow(spec.id, spec.name, result.metrics["subsets"], "ran"))
            except CDBenchError as e:
                rows.append(TableRow(spec.id, spec.name, None, "failed", str(e).splitlines()[0]))
        published = spec.published.get(table)
        if published:
            rows.append(TableRow(spec.id, f"{spec.name} (published)", published, "published"))
    if rows and all(r.status == "failed" for r in rows if r.status != "published") and \
            len({r.reason for r in rows if r.status == "failed"}) == 1:
        raise DataError(rows[0].reason)  # the same failure for every method: a problem of the dataset
    title = f"{TABLES[table]['title']}: {Path(dataset_dir).name}/{split}"
    md = to_markdown(rows, task, title)
    files = {"markdown": out_dir / f"{table}.md", "latex": out_dir / f"{table}.tex", "csv": out_dir / f"{table}.csv",
             "json": out_dir / f"{table}.json"}
    atomic_write_text(files["markdown"], md)
    atomic_write_text(files["latex"], to_latex(rows, task, title, label=f"tab:{table}"))
    atomic_write_text(files["csv"], to_csv(rows, task))
    atomic_write_json(files["json"], _jsonable({
        "table": table, "task": task, "dataset": str(Path(dataset_dir).resolve()), "split": split,
        "settings": {"n_boot": n_boot, "seed": seed}, "rows": rows_as_json(rows),
        "versions": environment_versions()}))
    return ReproducedTable(table, task, rows, files, md)


def _jsonable(obj: Any) -> Any:
    from cdbench.evaluation.report import jsonable

    return jsonable(obj)
