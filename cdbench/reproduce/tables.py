"""The papers' table layout in Markdown, LaTeX and CSV: rows = methods, columns = metrics per subset.

Scores tables (``spcd-measures``, ``mspcd-scoring``): SRCC / PLCC / STRESS for all / aligned / not
aligned pairs, as in Wang et al. (TPAMI 2023) and (TIP 2025). The description table
(``mspcd-description``): BLEU-1..4, METEOR, ROUGE-L, CIDEr, BERTScore F1 and the attribute
accuracy / macro-F1 on all pairs, plus the attribute macro-F1 on aligned / not aligned pairs.
Methods that did not run are kept as rows with dashes, and their reasons listed under the table.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SUBSETS = ("all", "aligned", "not_aligned")
SUBSET_TITLES = {"all": "All", "aligned": "Aligned", "not_aligned": "Not aligned"}


@dataclass(frozen=True)
class Column:
    subset: str
    group: str | None  # metrics sub-dict ("captions", "attributes") or None
    metric: str
    title: str
    digits: int


SCORE_COLUMNS = tuple(Column(s, None, m, t, d) for s in SUBSETS
                      for m, t, d in (("srcc", "SRCC", 4), ("plcc", "PLCC", 4), ("stress", "STRESS", 2)))
DESCRIPTION_COLUMNS = (
    *(Column("all", "captions", m, t, 4) for m, t in (
        ("bleu1", "BLEU-1"), ("bleu2", "BLEU-2"), ("bleu3", "BLEU-3"), ("bleu4", "BLEU-4"), ("meteor", "METEOR"),
        ("rouge_l", "ROUGE-L"), ("cider", "CIDEr"), ("bertscore_f1", "BERTScore"))),
    Column("all", "attributes", "accuracy", "Attr. acc.", 4),
    Column("all", "attributes", "macro_f1", "Attr. F1", 4),
    Column("aligned", "attributes", "macro_f1", "Attr. F1 (aligned)", 4),
    Column("not_aligned", "attributes", "macro_f1", "Attr. F1 (not aligned)", 4),
)


@dataclass
class TableRow:
    """One method: its metrics (``{subset: {...}}``) or why it has none."""

    id: str
    name: str
    metrics: dict | None
    status: str  # "ran" | "skipped" | "failed" | "published"
    reason: str = ""


def columns_for(task: str) -> tuple[Column, ...]:
    return SCORE_COLUMNS if task == "scores" else DESCRIPTION_COLUMNS


def cell_value(row: TableRow, col: Column) -> float | None:
    m = (row.metrics or {}).get(col.subset) or {}
    if col.group:
        m = m.get(col.group) or {}
    v = m.get(col.metric)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _fmt(v: float | None, digits: int) -> str:
    return "\u2014" if v is None else f"{v:.{digits}f}"


def _notes(rows: Sequence[TableRow]) -> list[str]:
    return [f"{r.name}: {'not run' if r.status == 'skipped' else 'failed'}: {r.reason}"
            for r in rows if r.status in ("skipped", "failed")]


def to_markdown(rows: Sequence[TableRow], task: str, title: str = "") -> str:
    cols = columns_for(task)
    lines = [f"**{title}**", ""] if title else []
    if task == "scores":
        lines.append("| Method | " + " | ".join(f"{c.title} ({SUBSET_TITLES[c.subset].lower()})" for c in cols) + " |")
    else:
        lines.append("| Method | " + " | ".join(c.title for c in cols) + " |")
    lines.append("|:---|" + "---:|" * len(cols))
    for r in rows:
        mark = "" if r.status in ("ran", "published") else " \u2020"
        name = r.name.replace("|", "\\|") + mark
        lines.append(f"| {name} | " + " | ".join(_fmt(cell_value(r, c), c.digits) for c in cols) + " |")
    notes = _notes(rows)
    if notes:
        lines += ["", *[f"\u2020 {n}" for n in notes]]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "\u0394": r"$\Delta$", "\u2020": r"$^\dagger$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(rows: Sequence[TableRow], task: str, title: str = "", label: str = "") -> str:
    """A booktabs table (``\\usepackage{booktabs}``); the best value of each column in bold."""
    cols = columns_for(task)
    best: dict[int, float] = {}
    for i, c in enumerate(cols):
        vals = [v for v in (cell_value(r, c) for r in rows if r.status == "ran") if v is not None]
        if vals:
            best[i] = min(vals) if c.metric == "stress" else max(vals)
    out = ["\\begin{table}[t]", "\\centering"]
    if title:
        out.append(f"\\caption{{{latex_escape(title)}}}")
    if label:
        out.append(f"\\label{{{label}}}")
    out.append("\\begin{tabular}{l" + "c" * len(cols) + "}")
    out.append("\\toprule")
    if task == "scores":
        out.append(" & " + " & ".join(f"\\multicolumn{{3}}{{c}}{{{SUBSET_TITLES[s]}}}" for s in SUBSETS) + " \\\\")
        out.append("".join(f"\\cmidrule(lr){{{2 + 3 * k}-{4 + 3 * k}}}" for k in range(3)))
        out.append("Method & " + " & ".join(c.title + (" $\\downarrow$" if c.metric == "stress" else " $\\uparrow$")
                                            for c in cols) + " \\\\")
    else:
        out.append("Method & " + " & ".join(latex_escape(c.title) for c in cols) + " \\\\")
    out.append("\\midrule")
    for r in rows:
        cells = []
        for i, c in enumerate(cols):
            v = cell_value(r, c)
            s = "--" if v is None else f"{v:.{c.digits}f}"
            if v is not None and r.status == "ran" and best.get(i) == v:
                s = f"\\textbf{{{s}}}"
            cells.append(s)
        mark = "" if r.status in ("ran", "published") else "\u2020"
        out.append(latex_escape(r.name + mark) + " & " + " & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    notes = _notes(rows)
    if notes:
        out.append("\\\\[2pt]{\\footnotesize " + "; ".join(latex_escape("\u2020 " + n) for n in notes) + "}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def to_csv(rows: Sequence[TableRow], task: str) -> str:
    cols = columns_for(task)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "id", "status", "reason", *[f"{c.subset}_{c.metric}" for c in cols]])
    for r in rows:
        vals = [cell_value(r, c) for c in cols]
        w.writerow([r.name, r.id, r.status, r.reason, *["" if v is None else repr(v) for v in vals]])
    return buf.getvalue()


def rows_as_json(rows: Sequence[TableRow]) -> list[dict[str, Any]]:
    return [{"id": r.id, "name": r.name, "status": r.status, "reason": r.reason, "metrics": r.metrics} for r in rows]
