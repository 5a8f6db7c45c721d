"""Attribute accuracy: how well generated descriptions interpret *which* colour attributes differ.

Each M-SPCD description rates seven attributes (white balance, brightness/contrast, colour
contrast, overall brightness, overall colour, dark details, bright details) as slight, moderate or
severe (Wang et al., IEEE TIP 2025). The severities are parsed from the generated and the reference
texts with :func:`cdbench.data.parse_description` (the one parser of the project) and compared:

* ``parse_rate``: share of descriptions in which all seven severities could be read;
  ``attribute_parse_rate``: share of (description, attribute) cells read.
* per attribute: ``accuracy`` (an unreadable severity counts as wrong) and ``macro_f1``, the mean
  over the severity classes present (in the references or the predictions) of
  ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``; an unreadable prediction is a false negative of its
  reference class and a false positive of none.
* overall: the means over the seven attributes, and ``exact_match`` (all seven right).

Cells whose *reference* severity cannot be read are left out of that attribute's counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cdbench.data import ATTRIBUTES, SEVERITIES, parse_description


def _severities(item: str | Mapping[str, str | None]) -> dict[str, str | None]:
    if isinstance(item, str):
        return parse_description(item)
    if isinstance(item, Mapping):
        out = {}
        for a in ATTRIBUTES:
            v = item.get(a)
            if v is not None and v not in SEVERITIES:
                raise ValueError(f"severity of {a!r} is {v!r}; expected one of {', '.join(SEVERITIES)} or None")
            out[a] = v
        return out
    raise TypeError(f"expected a description string or a severity mapping, got {type(item).__name__}")


def macro_f1(reference: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Macro-F1 over the severity classes present in ``reference`` or ``predicted`` (None = unread)."""
    classes = [c for c in SEVERITIES if c in reference or c in predicted]
    if not classes:
        return math.nan
    f1s = []
    for c in classes:
        tp = sum(1 for r, p in zip(reference, predicted) if r == c and p == c)
        fp = sum(1 for r, p in zip(reference, predicted) if r != c and p == c)
        fn = sum(1 for r, p in zip(reference, predicted) if r == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 0.0)
    return sum(f1s) / len(f1s)


def attribute_accuracy(descriptions: Sequence[str], references: Sequence[str | Mapping[str, str | None]]) -> dict:
    """Parse rate, per-attribute accuracy / macro-F1 and their means (see the module docstring).

    ``references`` are reference descriptions (parsed the same way) or ``{attribute: severity}``
    mappings. Returns ``{"n", "parse_rate", "attribute_parse_rate", "accuracy", "macro_f1",
    "exact_match", "per_attribute": {attribute: {"n", "parse_rate", "accuracy", "macro_f1",
    "confusion": {reference: {predicted or "unparsed": count}}}}}``.
    """
    if len(descriptions) != len(references):
        raise ValueError(f"{len(descriptions)} descriptions but {len(references)} references")
    preds = [_severities(str(d) if d is not None else "") for d in descriptions]
    refs = [_severities(r) for r in references]
    n = len(preds)
    per: dict[str, dict] = {}
    for a in ATTRIBUTES:
        cells = [(r[a], p[a]) for r, p in zip(refs, preds) if r[a] is not None]
        rs, ps = [c[0] for c in cells], [c[1] for c in cells]
        confusion = {s: {t: 0 for t in (*SEVERITIES, "unparsed")} for s in SEVERITIES}
        for r, p in cells:
            confusion[r][p or "unparsed"] += 1
        per[a] = {"n": len(cells),
                  "parse_rate": (sum(p is not None for p in ps) / len(cells)) if cells else math.nan,
                  "accuracy": (sum(r == p for r, p in cells) / len(cells)) if cells else math.nan,
                  "macro_f1": macro_f1(rs, ps) if cells else math.nan,
                  "confusion": confusion}

    def mean(key: str) -> float:
        vals = [per[a][key] for a in ATTRIBUTES if not math.isnan(per[a][key])]
        return sum(vals) / len(vals) if vals else math.nan

    complete = [r for r in zip(refs, preds) if all(r[0][a] is not None for a in ATTRIBUTES)]
    return {
        "n": n,
        "parse_rate": (sum(all(p[a] is not None for a in ATTRIBUTES) for p in preds) / n) if n else math.nan,
        "attribute_parse_rate": (sum(p[a] is not None for p in preds for a in ATTRIBUTES) / (7 * n)) if n else math.nan,
        "accuracy": mean("accuracy"),
        "macro_f1": mean("macro_f1"),
        "exact_match": (sum(all(r[a] == p[a] for a in ATTRIBUTES) for r, p in complete) / len(complete))
        if complete else math.nan,
        "per_attribute": per,
    }
