"""The dataset card (``README.md``): YAML ``configs`` for ``datasets.load_dataset`` and the report.

With images, each config uses the ``imagefolder`` loader: its split files are listed as metadata
files (``metadata_filenames``) next to ``images/``, and ``image1_file_name`` / ``image2_file_name``
become lazily decoded ``Image`` columns ``image1`` / ``image2``. The image files are part of each
split's ``data_files`` (that is what selects the ``imagefolder`` loader, and what the Hub downloads).
With ``--labels-only`` the configs are plain parquet.
"""

from __future__ import annotations

from string import Template

import yaml

from cdbench.data.attributes import ATTRIBUTES
from cdbench.data.dataset import IMAGES_DIR
from cdbench.data.levels import LEVELS

_COLUMN_DOCS = {
    "pair_id": "`<stem of image1>+<stem of image2>`, released order",
    "image1": "first image (`datasets.Image`, decoded lazily; absent with --labels-only)",
    "image2": "second image (idem)",
    "image1_file": "file name of image1 under `images/` (as released)",
    "image2_file": "file name of image2",
    "scene": "SPCD scene, e.g. `I0249`",
    "aligned": "False only when both images are source-01 captures (different phones)",
    "score": "human colour difference (Delta V, float32); None where hidden",
    "level": "ClassLabel " + "/".join(LEVELS) + " by the level rule; None where hidden",
    "level_value": "`ln((score + 1.2943) / 1.6036) / 0.5391` (float32)",
    "question": "the prompt paraphrase of the released item (\"\" for SPCD)",
    "scene_fold": "0..4, seeded hash of the scene (scene-disjoint folds)",
    "competition_split": "train / test: the SPCD competition file of the pair (None if unknown)",
    "released_level": "level label of the released score file (None for SPCD)",
    "released_level_by_alignment": "level label of the released aligned / not-aligned files (None if absent)",
    "instruction": "the description instruction",
    "reference": "the expert description",
}


def _configs_yaml(record: dict) -> list[dict]:
    out = []
    images = not record["labels_only"]
    globs = [f"{IMAGES_DIR}/*{ext}" for ext in record.get("image_extensions", [".png"])]
    for i, (config, spec) in enumerate(record["configs"].items()):
        files = [s["file"] for s in spec["splits"].values()]
        entry: dict = {"config_name": config}
        if i == 0:
            entry["default"] = True
        entry["data_files"] = [{"split": split, "path": [s["file"], *globs] if images else s["file"]}
                               for split, s in spec["splits"].items()]
        if images:
            entry["metadata_filenames"] = files
            entry["drop_labels"] = True
        out.append(entry)
    return out


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _columns(record: dict) -> str:
    parts = []
    for config, cols in record["report"]["columns"].items():
        rows = []
        for c in cols:
            doc = _COLUMN_DOCS.get(c)
            if c in ATTRIBUTES:
                doc = f"severity of {c.replace('_', ' ')} (ClassLabel slight/moderate/severe) parsed from `reference`"
            rows.append([f"`{c}`", doc or ""])
        parts.append(f"`{config}`:\n\n" + _table(["column", "meaning"], rows))
    return "\n\n".join(parts)


def _counts(record: dict) -> str:
    parts = []
    for config, splits in record["report"]["counts"].items():
        header = ["split", "pairs", "aligned", "not aligned"] + (["scored", *LEVELS] if config == "scores" else [])
        rows = []
        for split, c in splits.items():
            row = [split, c["pairs"], c["aligned"], c["not_aligned"]]
            if config == "scores":
                row += [c["scored"], *(c["levels"].get(lv, 0) for lv in LEVELS)]
            rows.append(row)
        parts.append(f"`{config}`:\n\n" + _table(header, rows))
    if record["report"].get("severity_counts"):
        sev = record["report"]["severity_counts"]
        rows = [[split, a, *counts] for split, per in sev.items() for a, counts in per.items()]
        parts.append("`descriptions`, severities parsed per attribute:\n\n"
                     + _table(["split", "attribute", "slight", "moderate", "severe", "none"], rows))
    return "\n\n".join(parts)


def _lines(items: list[str]) -> str:
    return "\n".join(f"- {x}" for x in items) if items else "- nothing"


def render_card(recipe: dict, record: dict, template: str) -> str:
    """README.md text: YAML front matter, then the template filled with the build report."""
    report = record["report"]
    front = {
        "pretty_name": recipe.get("pretty_name", recipe["name"]),
        "license": recipe.get("license", "other"),
        "tags": ["color-difference", "image-quality-assessment", "smartphone-photography"]
                + (["synthetic"] if record.get("synthetic") else []),
        "configs": _configs_yaml(record),
    }
    header = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000) + "---\n\n"
    synthetic_note = ("\n> **SYNTHETIC DATA** generated by `cdbench.data.synthetic` (not SPCD photographs or human "
                      "labels); for tests and demos only.\n") if record.get("synthetic") else ""
    images_note = ("this build has no images (`--labels-only`): the configs have the same columns without "
                   "`image1` / `image2`." if record["labels_only"] else
                   f"{record['num_images']} images, {record.get('image_bytes', 0)} bytes.")
    has_desc = "descriptions" in record["configs"]
    values = {
        "pretty_name": front["pretty_name"],
        "synthetic_note": synthetic_note,
        "name": record["name"],
        "cdbench_version": record["cdbench_version"],
        "images_note": images_note,
        "load_descriptions": (f"descriptions = datasets.load_dataset(\"{record['name']}\", \"descriptions\")\n"
                              if has_desc else ""),
        "columns": _columns(record),
        "counts": _counts(record),
        "level_formula": recipe["level_rule"]["formula"],
        "level_bins": ", ".join(str(b) for b in recipe["level_rule"]["bins"]),
        "agreement": ("\n" + _lines(report["agreement"]) + "\n") if report.get("agreement") else "",
        "scenes": _lines(report["scenes"]),
        "dropped": _lines(report["dropped"]),
        "sources": _table(["file", "sha256", "release checksum"],
                          [[f"`{f}`", f"`{s['sha256'][:16]}...`", s["check"]]
                           for f, s in record["sources"].items()]),
        "citation": recipe.get("citation", "").strip(),
    }
    return header + Template(template).substitute(values)
