"""Deterministic SYNTHETIC data in the SPCD / M-SPCD layouts, made with cdbench's own code.

Nothing here is SPCD data: the images are generated scenes (smooth colour fields and shapes), the
"captures" are copies with small geometric shifts and per-camera colour renderings, and the edits
(sources ``02``..``07``) apply known colour transforms. Every generated root carries a
``SYNTHETIC.md`` note and a ``synthetic.json`` file with the generator settings, the transform of
every image and the true score of every pair (also the ones hidden in ``test_data.csv``).

The score of a pair is a deterministic function of how much the two images' colour transforms
change the colours of the (unshifted) scene, ``m`` = mean Euclidean distance in 8-bit sRGB units,
mapped to the SPCD scale (about 1.4..15)::

    score = clip(1.4 + 14 * (1 - exp(-m / 100)) * exp(eps), 1.4, 15.4),   eps ~ N(0, 0.15^2) (seeded)

so colour-difference measures correlate with it (SRCC well above 0.5) but not perfectly
(noise, and the geometric shifts of the not-aligned capture pairs).

File formats are exactly those of the released data (``../shared/data/README.md``):
SPCD ``images/I{scene:04d}_{source:02d}_{index:02d}.png`` and ``{train,test}_data.csv``
(``image1,image2,score``, empty score = hidden); M-SPCD ``score_task/*.json`` and
``depict_task/*.json`` (conversation / question formats), and optionally ``train/train.json``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cdbench.data.attributes import ATTRIBUTES, SEVERITIES
from cdbench.data.levels import LEVELS, level_index_of_score
from cdbench.data.pairs import is_aligned

SYNTHETIC_MARKER = "synthetic.json"
"""Name of the file that marks (and documents) a generated root."""

QUESTIONS: tuple[str, ...] = (
    "Please describe the color difference in the two images?",
    "What do you think about the color divergence between these two images?",
    "How would you characterize the difference in color between these two pictures?",
    "How do you perceive the color difference between these two images?",
    "What is your impression of the color variation between these two images?",
    "What are your thoughts on the color difference between these two images?",
    "How would you describe the color difference in these two images?",
    "Can you please describe the color difference in the two images?",
)
"""Question paraphrases used in the synthetic score items (a subset of the released 20)."""

DESCRIBE_INSTRUCTION = (
    "Please provide a descriptive analysis for the color difference between the two images in terms of the "
    "following dimensions: white balance, brightness/contrast, color contrast, overall brightness, overall "
    "color, dark details, and bright details. Assign a degree of severity (slight, moderate, severe) for each "
    "dimension."
)
"""The M-SPCD description instruction (as released)."""

ANSWER_TEMPLATE = "The color difference between these two images is {level}."

_N_CAPTURES = 4
_EDIT_SOURCES = (2, 3, 4, 5, 6, 7)
_EDITS_PER_SOURCE = 2
_EDIT_PAIRS_PER_SCENE = 10
_TRAIN_FRACTION = 0.4
_NOISE_SIGMA = 0.15
_MAGNITUDE_SCALE = 100.0

_OPENERS = (
    "The two images exhibit",
    "Upon closer scrutiny, the two images show",
    "Comparing the two images reveals",
    "Looking at both pictures, one can see",
)
_NOUNS = ("variations", "differences", "disparities", "discrepancies")
_DARK_VERBS = ("reveal", "show", "present")
_BRIGHT_VERBS = ("exhibit", "display", "show")


@dataclass(frozen=True)
class ColourTransform:
    """A global colour rendering: white-balance gains and exposure in linear RGB, saturation around
    the luminance (Rec. 709 weights), then a power tone curve on the sRGB-encoded values."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 0.0  # stops
    saturation: float = 1.0
    gamma: float = 1.0

    def to_dict(self) -> dict:
        return {"gains": [round(g, 6) for g in self.gains], "exposure": round(self.exposure, 6),
                "saturation": round(self.saturation, 6), "gamma": round(self.gamma, 6)}


@dataclass
class SyntheticImage:
    name: str
    transforms: tuple[ColourTransform, ...]
    shift: tuple[int, int] = (0, 0)
    kind: str = "capture"


@dataclass
class SyntheticPair:
    image1: str
    image2: str
    score: float
    split: str
    magnitude: float
    severities: dict[str, str] = field(default_factory=dict)


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def _apply(linear: np.ndarray, transforms: tuple[ColourTransform, ...]) -> np.ndarray:
    """Render linear RGB through the transforms; returns sRGB-encoded floats in [0, 1]."""
    x = linear
    for t in transforms:
        x = x * np.asarray(t.gains) * (2.0 ** t.exposure)
        lum = x @ np.array([0.2126, 0.7152, 0.0722])
        x = lum[..., None] + t.saturation * (x - lum[..., None])
        x = np.clip(x, 0.0, 1.0)
        if t.gamma != 1.0:
            x = _srgb_decode(np.power(_srgb_encode(x), t.gamma))
    return _srgb_encode(x)


def _scene_canvas(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colourful scene in linear RGB: smooth gradients, a few shapes and fine texture."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(size - 1, 1)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
        img[..., c] = 0.45 + 0.3 * np.sin(3 * (a * xx + b * yy) + p)
    for _ in range(int(rng.integers(3, 7))):
        colour = rng.uniform(0.05, 0.95, 3)
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        else:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * rng.uniform(0.4, 1.5))
        img[mask] = colour
    img += rng.normal(0, 0.02, img.shape)
    return _srgb_decode(np.clip(img, 0, 1))


def _camera(rng: np.random.Generator) -> ColourTransform:
    g = 1 + rng.normal(0, 0.05, 3)
    return ColourTransform(gains=(g[0] / g[1], 1.0, g[2] / g[1]), exposure=float(rng.normal(0, 0.2)),
                           saturation=float(1 + rng.normal(0, 0.08)), gamma=float(1 + rng.normal(0, 0.05)))


def _edit(rng: np.random.Generator, source: int) -> ColourTransform:
    def wb() -> tuple[float, float, float]:
        a = rng.uniform(0.03, 0.4) * rng.choice([-1, 1])
        return (1 + a, 1.0, 1 - a)

    def ev() -> float:
        return float(rng.uniform(0.1, 1.3) * rng.choice([-1, 1]))

    def sat() -> float:
        return float(rng.choice([rng.uniform(0.2, 0.9), rng.uniform(1.1, 2.0)]))

    def gam() -> float:
        return float(rng.choice([rng.uniform(0.5, 0.92), rng.uniform(1.08, 1.8)]))

    if source == 2:
        return ColourTransform(gains=wb())
    if source == 3:
        return ColourTransform(exposure=ev())
    if source == 4:
        return ColourTransform(saturation=sat())
    if source == 5:
        return ColourTransform(gamma=gam())
    if source == 6:
        return ColourTransform(gains=wb(), saturation=sat())
    return ColourTransform(exposure=ev(), gamma=gam())


def _severity(value: float, slight_max: float, moderate_max: float) -> str:
    return SEVERITIES[0] if value < slight_max else SEVERITIES[1] if value < moderate_max else SEVERITIES[2]


def _attribute_severities(img1: np.ndarray, img2: np.ndarray) -> dict[str, str]:
    """Severity of each of the seven attributes from the two rendered (aligned) images, sRGB [0,1]."""
    w = np.array([0.2126, 0.7152, 0.0722])
    y1, y2 = img1 @ w, img2 @ w
    m1, m2 = img1.reshape(-1, 3).mean(0), img2.reshape(-1, 3).mean(0)
    chroma1, chroma2 = img1 - y1[..., None], img2 - y2[..., None]
    dark = y1 < np.quantile(y1, 0.25)
    bright = y1 > np.quantile(y1, 0.75)
    wb = abs(np.log((m1[0] + 1e-3) / (m1[2] + 1e-3)) - np.log((m2[0] + 1e-3) / (m2[2] + 1e-3)))
    values = {
        "white_balance": (wb, 0.08, 0.25),
        "brightness_contrast": (abs(y1.std() - y2.std()) + 0.5 * abs(y1.mean() - y2.mean()), 0.03, 0.08),
        "color_contrast": (abs(np.abs(chroma1).mean() - np.abs(chroma2).mean()), 0.01, 0.03),
        "overall_brightness": (abs(y1.mean() - y2.mean()), 0.04, 0.12),
        "overall_color": (np.abs((m1 - y1.mean()) - (m2 - y2.mean())).sum(), 0.03, 0.09),
        "dark_details": (abs(y1[dark].mean() - y2[dark].mean()), 0.03, 0.1),
        "bright_details": (abs(y1[bright].mean() - y2[bright].mean()), 0.03, 0.1),
    }
    return {a: _severity(float(v), lo, hi) for a, (v, lo, hi) in values.items()}


def score_of_magnitude(magnitude: float, noise: float = 0.0) -> float:
    """The synthetic score of a colour-change magnitude (mean sRGB distance, 8-bit units):
    ``clip(1.4 + 14 * (1 - exp(-m / 100)) * exp(noise), 1.4, 15.4)``."""
    s = 1.4 + 14.0 * (1.0 - np.exp(-magnitude / _MAGNITUDE_SCALE)) * np.exp(noise)
    return float(np.clip(s, 1.4, 15.4))


def _png_bytes(rgb01: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(rgb01 * 255).astype(np.uint8)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _generate(n_scenes: int, size: int, seed: int, write_images_to: Path | None
              ) -> tuple[list[SyntheticImage], list[SyntheticPair]]:
    """Generate the images (optionally writing the PNGs) and the scored pairs."""
    rng = np.random.default_rng(seed)
    images: list[SyntheticImage] = []
    pairs: list[SyntheticPair] = []
    pad = 4
    for s in range(1, n_scenes + 1):
        scene = f"I{s:04d}"
        canvas = _scene_canvas(rng, size + 2 * pad)
        base = canvas[pad:pad + size, pad:pad + size]
        rendered: dict[str, np.ndarray] = {}  # colour rendering of the unshifted base, for the scores
        scene_images: list[SyntheticImage] = []
        cams = [_camera(rng) for _ in range(_N_CAPTURES)]
        for k in range(_N_CAPTURES):
            shift = (0, 0) if k == 0 else tuple(int(v) for v in rng.integers(-3, 4, 2))
            scene_images.append(SyntheticImage(f"{scene}_01_{k + 1:02d}.png", (cams[k],), shift, "capture"))
        for src in _EDIT_SOURCES:
            for j in range(_EDITS_PER_SOURCE):
                scene_images.append(SyntheticImage(f"{scene}_{src:02d}_{j + 1:02d}.png",
                                                   (cams[0], _edit(rng, src)), (0, 0), "edit"))
        for im in scene_images:
            rendered[im.name] = _apply(base, im.transforms)
            if write_images_to is not None:
                dy, dx = im.shift
                crop = canvas[pad + dy:pad + dy + size, pad + dx:pad + dx + size]
                (write_images_to / im.name).write_bytes(_png_bytes(_apply(crop, im.transforms)))
        images.extend(scene_images)
        names = [im.name for im in scene_images]
        captures = names[:_N_CAPTURES]
        candidates = [(a, b) for i, a in enumerate(captures) for b in captures[i + 1:]]
        aligned_pool = [names[0], *names[_N_CAPTURES:]]
        all_aligned = [(a, b) for i, a in enumerate(aligned_pool) for b in aligned_pool[i + 1:]]
        pick = rng.choice(len(all_aligned), size=min(_EDIT_PAIRS_PER_SCENE, len(all_aligned)), replace=False)
        candidates += [all_aligned[i] for i in sorted(pick)]
        for a, b in candidates:
            if rng.random() < 0.5:
                a, b = b, a
            m = float(np.sqrt(((rendered[a] - rendered[b]) ** 2).sum(-1)).mean() * 255.0)
            score = score_of_magnitude(m, float(rng.normal(0, _NOISE_SIGMA)))
            split = "train" if rng.random() < _TRAIN_FRACTION else "test"
            pairs.append(SyntheticPair(a, b, score, split, m, _attribute_severities(rendered[a], rendered[b])))
    return images, pairs


def _write_csv(path: Path, rows: list[SyntheticPair], hide: bool) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image1", "image2", "score"])
    for p in rows:
        w.writerow([p.image1, p.image2, "" if hide else f"{p.score:.9f}"])
    path.write_text(buf.getvalue(), encoding="utf-8")


def make_synthetic_spcd(root: str | Path, *, n_scenes: int = 6, size: int = 64, seed: int = 0,
                        hide_test_scores: bool = True) -> Path:
    """Write a synthetic SPCD-layout folder and return its path.

    ``root/images/I{scene:04d}_{source:02d}_{index:02d}.png``: per scene 4 source-01 "captures"
    (per-camera colour rendering, shifted by up to 3 px except ``_01_01``) and 12 edits of
    ``_01_01`` (sources 02..07: white balance, exposure, saturation, tone curve, and two
    combinations; two strengths each). ``root/train_data.csv`` / ``root/test_data.csv``
    (``image1,image2,score``) hold 16 pairs per scene (6 not-aligned capture pairs, 10 aligned),
    about 40% in train; test scores are empty when ``hide_test_scores``. ``root/synthetic.json``
    holds every true score. Deterministic: the same arguments give the same bytes.
    """
    if n_scenes < 1 or n_scenes > 9999:
        raise ValueError(f"n_scenes must be in 1..9999, got {n_scenes}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, pairs = _generate(n_scenes, size, seed, root / "images")
    _write_csv(root / "train_data.csv", [p for p in pairs if p.split == "train"], hide=False)
    _write_csv(root / "test_data.csv", [p for p in pairs if p.split == "test"], hide=hide_test_scores)
    meta = {
        "generator": "cdbench.data.synthetic.make_synthetic_spcd",
        "synthetic": True,
        "settings": {"n_scenes": n_scenes, "size": size, "seed": seed, "hide_test_scores": hide_test_scores},
        "score_formula": "clip(1.4 + 14 * (1 - exp(-m / 100)) * exp(eps), 1.4, 15.4), eps ~ N(0, 0.15^2); "
                         "m = mean sRGB distance (8-bit units) of the two colour renderings of the scene",
        "images": {im.name: {"kind": im.kind, "shift": list(im.shift),
                             "transforms": [t.to_dict() for t in im.transforms]} for im in images},
        "pairs": [{"image1": p.image1, "image2": p.image2, "score": round(p.score, 9), "split": p.split,
                   "magnitude": round(p.magnitude, 6), "severities": p.severities} for p in pairs],
    }
    (root / SYNTHETIC_MARKER).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    (root / "SYNTHETIC.md").write_text(
        "# Synthetic data (not SPCD)\n\nGenerated by `cdbench.data.synthetic.make_synthetic_spcd` with "
        f"n_scenes={n_scenes}, size={size}, seed={seed}. Images are generated scenes with known colour "
        "transforms; scores are a function of the colour change plus seeded noise. For tests and demos "
        "only. True scores (also the hidden test ones) are in synthetic.json.\n", encoding="utf-8")
    return root


def read_synthetic_truth(spcd_root: str | Path) -> dict:
    """The ``synthetic.json`` of a generated root (a clear error for a root that is not synthetic)."""
    path = Path(spcd_root) / SYNTHETIC_MARKER
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {spcd_root} was not made by make_synthetic_spcd")
    return json.loads(path.read_text(encoding="utf-8"))


def format_varied_description(severities: dict[str, str], variant: int) -> str:
    """An M-SPCD-style expert sentence naming all seven attributes in order, wording chosen by
    ``variant`` (as the released answers vary their wording); :func:`cdbench.data.parse_description`
    reads it back exactly."""
    s = [severities[a] for a in ATTRIBUTES]
    n = _NOUNS
    v = variant
    return (f"{_OPENERS[v % len(_OPENERS)]} {s[0]} {n[v % 4]} in white balance, {s[1]} {n[(v + 1) % 4]} in "
            f"brightness contrast, {s[2]} {n[(v + 2) % 4]} in color contrast, {s[3]} in overall brightness, "
            f"and {s[4]} {n[(v + 3) % 4]} in overall color. Dark details {_DARK_VERBS[v % 3]} {s[5]} "
            f"{n[(v + 1) % 4]}, while light details {_BRIGHT_VERBS[(v + 1) % 3]} {s[6]} {n[v % 4]}.")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")


def _score_item(idx: int, p: dict, question: str, level: str) -> dict:
    return {"id": f"{idx:012d}", "image": [p["image1"], p["image2"]],
            "conversations": [{"from": "human", "value": f"<image><image>\n{question}"},
                              {"from": "gpt", "value": ANSWER_TEMPLATE.format(level=level)}],
            "gt_score": p["score"]}


def make_synthetic_mspcd(annotations_root: str | Path, spcd_root: str | Path, *, seed: int = 0,
                         test_fraction: float = 0.6, n_describe: int = 4, n_label_disagreements: int = 2,
                         with_train: bool = False) -> Path:
    """Write synthetic M-SPCD annotations for the pairs of a :func:`make_synthetic_spcd` root.

    ``score_task/test_data.json`` holds about ``test_fraction`` of the SPCD pairs (from both
    SPCD splits, as in the release) with capitalised levels, ``n_label_disagreements`` of which
    are moved one level away from the level rule (the release has 518 such pairs);
    ``test_aligned_data.json`` / ``test_notaligned_data.json`` hold the same pairs split by
    alignment, lower-case levels by the rule, ids renumbered. ``depict_task/`` holds
    ``n_describe`` aligned and ``n_describe`` not-aligned described pairs
    (``depict_align_test.json``, ``depict_not_align_test.json``, and both in ``depict_test.json``).
    With ``with_train``, ``train/train.json`` mixes score items and description items (the
    conversation format) for the SPCD training pairs not in the test set. Returns the root.
    """
    truth = read_synthetic_truth(spcd_root)
    rng = np.random.default_rng(seed + 1_000_003)
    root = Path(annotations_root)
    pairs = truth["pairs"]
    in_test = rng.random(len(pairs)) < test_fraction
    test = [p for p, t in zip(pairs, in_test) if t]
    rest = [p for p, t in zip(pairs, in_test) if not t and p["split"] == "train"]
    flip = set(rng.choice(len(test), size=min(n_label_disagreements, len(test)), replace=False).tolist())
    items, aligned, notaligned = [], [], []
    for i, p in enumerate(test):
        lvl = level_index_of_score(p["score"])
        released = lvl
        if i in flip:
            released = lvl + 1 if lvl < len(LEVELS) - 1 else lvl - 1
        items.append(_score_item(len(items) + 1, p, QUESTIONS[int(rng.integers(len(QUESTIONS)))],
                                 LEVELS[released].capitalize()))
        target = aligned if is_aligned(p["image1"], p["image2"]) else notaligned
        target.append(_score_item(len(target) + 1, p, QUESTIONS[int(rng.integers(len(QUESTIONS)))], LEVELS[lvl]))
    _write_json(root / "score_task" / "test_data.json", items)
    _write_json(root / "score_task" / "test_aligned_data.json", aligned)
    _write_json(root / "score_task" / "test_notaligned_data.json", notaligned)

    def depict(group: list[dict], start: int) -> list[dict]:
        return [{"question_id": f"{start + k:012d}", "image": [p["image1"], p["image2"]],
                 "text": DESCRIBE_INSTRUCTION,
                 "human_answer": format_varied_description(p["severities"], start + k)}
                for k, p in enumerate(group)]

    al = [p for p in test if is_aligned(p["image1"], p["image2"])][:n_describe]
    na = [p for p in test if not is_aligned(p["image1"], p["image2"])][:n_describe]
    _write_json(root / "depict_task" / "depict_align_test.json", depict(al, 1))
    _write_json(root / "depict_task" / "depict_not_align_test.json", depict(na, 1))
    _write_json(root / "depict_task" / "depict_test.json", depict(al, 1) + depict(na, len(al) + 1))
    if with_train:
        train = []
        for p in rest:
            q = QUESTIONS[int(rng.integers(len(QUESTIONS)))]
            train.append(_score_item(len(train) + 1, p, q, LEVELS[level_index_of_score(p["score"])]))
            if rng.random() < 0.5:
                train.append({"id": f"{len(train) + 1:012d}", "image": [p["image1"], p["image2"]],
                              "conversations": [
                                  {"from": "human", "value": f"<image><image>\n{DESCRIBE_INSTRUCTION}"},
                                  {"from": "gpt", "value": format_varied_description(p["severities"], len(train))}]})
        _write_json(root / "train" / "train.json", train)
    return root
