"""The seven colour attributes of M-SPCD descriptions, their severities, and a text parser.

Reference: Wang et al., "Harnessing Multi-modal Large Language Models for Measuring and
Interpreting Color Differences", IEEE TIP 2025. Each expert description rates seven attributes
(white balance, brightness/contrast, colour contrast, overall brightness, overall colour, dark
details, bright details) with one severity each: slight, moderate or severe.

:func:`parse_description` turns a free-text description (human or model-generated) into
``{attribute: severity or None}``. It reads every released human answer exactly and tolerates the
paraphrases models produce (British spelling, "light details", "brightness and contrast",
"shadow details", "mild"/"strong", ...). An attribute that is not mentioned, or mentioned without a
severity, maps to None.
"""

from __future__ import annotations

import re

ATTRIBUTES: tuple[str, ...] = (
    "white_balance",
    "brightness_contrast",
    "color_contrast",
    "overall_brightness",
    "overall_color",
    "dark_details",
    "bright_details",
)
"""Column-style names of the seven attributes, in the order the descriptions use."""

ATTRIBUTE_NAMES: dict[str, str] = {
    "white_balance": "white balance",
    "brightness_contrast": "brightness/contrast",
    "color_contrast": "color contrast",
    "overall_brightness": "overall brightness",
    "overall_color": "overall color",
    "dark_details": "dark details",
    "bright_details": "bright details",
}
"""Display names, as in the M-SPCD instruction."""

SEVERITIES: tuple[str, ...] = ("slight", "moderate", "severe")
"""The three severities, from the smallest to the largest."""

# Attribute phrases (on normalised text: lower case, American spelling, '/' and '-' as spaces).
# Order matters: the longer, more specific phrases are matched first and their spans consumed.
_W = r"(?:\s+(?:of|in|for|on|within|across)\s+(?:the\s+)?)"
_VERB = r"\s+(?:are|is|show|shows|exhibit|differ|reveal|display|have|present|demonstrate|appear)\b"
_ATTRIBUTE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("white_balance", r"white\s*balanc(?:e|ing)|\bwb\b"),
    ("brightness_contrast", r"brightness\s+(?:and\s+|&\s+)?contrast|luminance\s+(?:and\s+)?contrast"
                            r"|tonal\s+contrast"),
    ("color_contrast", r"colou?r\s+contrast|chromatic\s+contrast|saturation\s+contrast"),
    ("overall_brightness", r"(?:overall|global|general)\s+(?:brightness|luminance|lightness|exposure)"),
    ("overall_color", r"(?:overall|global|general)\s+(?:colou?rs?|hue|tone|tint|colou?r\s+cast|color\s+tone)"),
    ("dark_details", r"(?:dark|shadow|darker|low\s+light)\s+(?:details?|areas?|regions?|parts?)"
                     r"|details?" + _W + r"(?:dark(?:er)?|shadows?)(?:\s+(?:areas?|regions?|parts?))?"
                     r"|\bin\s+the\s+shadows\b|\bshadows(?=" + _VERB + ")"),
    ("bright_details", r"(?:bright|light|highlight|brighter|lighter)\s+(?:details?|areas?|regions?|parts?)"
                       r"|details?" + _W + r"(?:bright(?:er)?|light(?:er)?|highlights?)"
                       r"(?:\s+(?:areas?|regions?|parts?))?|\bin\s+the\s+highlights\b|\bhighlights(?=" + _VERB + ")"),
)
_ATTRIBUTE_RE = [(name, re.compile(p)) for name, p in _ATTRIBUTE_PATTERNS]

_SEVERITY_WORDS: dict[str, tuple[str, ...]] = {
    "slight": ("slight", "slightly", "minor", "subtle", "subtly", "mild", "mildly", "small", "faint",
               "minimal", "marginal", "little"),
    "moderate": ("moderate", "moderately", "medium", "noticeable", "noticeably", "modest", "intermediate"),
    "severe": ("severe", "severely", "significant", "significantly", "strong", "strongly", "major",
               "large", "substantial", "substantially", "drastic", "drastically", "pronounced", "huge",
               "considerable", "considerably", "extreme", "marked", "dramatic"),
}
_SEVERITY_OF = {w: s for s, words in _SEVERITY_WORDS.items() for w in words}
# The three canonical words also match glued to the next word ("slightdifferences" occurs in
# the released answers); their synonyms must be whole words.
_SEVERITY_RE = re.compile(
    r"\b(?:(" + "|".join(sorted(_SEVERITY_OF, key=len, reverse=True)) + r")\b|(slight|moderate|severe))"
)
# Clause boundaries: punctuation and the conjunctions that join attribute clauses.
_BOUNDARY_RE = re.compile(r"[.;,!?\n()]|\b(?:while|whereas|and|but|although|with)\b")


def normalise_text(text: str) -> str:
    """Lower case, American spelling of colour words, '/', '-' and '_' as spaces."""
    t = text.lower()
    t = re.sub(r"colour", "color", t)
    t = re.sub(r"[/\-_]", " ", t)
    return t


def parse_description(text: str) -> dict[str, str | None]:
    """Parse the seven attribute severities from a free-text description.

    Returns ``{attribute: 'slight' | 'moderate' | 'severe' | None}`` for every attribute of
    :data:`ATTRIBUTES`. The text is cut into clauses (punctuation, "while", "and", ...); within a
    clause the attributes and severity words are paired in order when their counts match, one
    severity applies to every attribute of its clause, and otherwise each attribute takes the
    nearest severity word of the clause. An attribute mentioned twice keeps its first severity.
    """
    if not isinstance(text, str):
        raise TypeError(f"description must be a string, got {type(text).__name__}")
    t = normalise_text(text)
    taken = [False] * len(t)
    attrs: list[tuple[int, int, str]] = []
    for name, rx in _ATTRIBUTE_RE:
        for m in rx.finditer(t):
            if any(taken[m.start():m.end()]):
                continue
            attrs.append((m.start(), m.end(), name))
            taken[m.start():m.end()] = [True] * (m.end() - m.start())
    attrs.sort()
    sevs = [(m.start(), m.end(), _SEVERITY_OF[m.group(1) or m.group(2)]) for m in _SEVERITY_RE.finditer(t)
            if not any(taken[m.start():m.end()])]
    bounds = [m.start() for m in _BOUNDARY_RE.finditer(t) if not taken[m.start()]]
    edges = [0, *bounds, len(t) + 1]

    def clause(pos: int) -> int:
        lo, hi = 0, len(edges) - 1
        while lo < hi - 1:  # binary search: edges[lo] <= pos < edges[hi]
            mid = (lo + hi) // 2
            if edges[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo

    result: dict[str, str | None] = dict.fromkeys(ATTRIBUTES)
    by_clause: dict[int, tuple[list, list]] = {}
    for a in attrs:
        by_clause.setdefault(clause(a[0]), ([], []))[0].append(a)
    for s in sevs:
        by_clause.setdefault(clause(s[0]), ([], []))[1].append(s)
    for c_attrs, c_sevs in by_clause.values():
        if not c_attrs or not c_sevs:
            continue
        if len(c_attrs) == len(c_sevs):
            pairs = [(a[2], s[2]) for a, s in zip(c_attrs, c_sevs)]
        elif len(c_sevs) == 1:
            pairs = [(a[2], c_sevs[0][2]) for a in c_attrs]
        else:
            pairs = [(a[2], min(c_sevs, key=lambda s, a=a: min(abs(s[0] - a[1]), abs(a[0] - s[1])))[2])
                     for a in c_attrs]
        for name, sev in pairs:
            if result[name] is None:
                result[name] = sev
    return result


def severity_index(name: str | None) -> int | None:
    """Index 0..2 of a severity name, None for None; a clear error for anything else."""
    if name is None:
        return None
    try:
        return SEVERITIES.index(name)
    except ValueError:
        raise ValueError(f"unknown severity {name!r}; expected one of {', '.join(SEVERITIES)}") from None


def format_description(severities: dict[str, str]) -> str:
    """A plain description naming each attribute with its severity (the inverse of the parser)."""
    parts = [f"{severities[a]} differences in {ATTRIBUTE_NAMES[a]}" for a in ATTRIBUTES if severities.get(a)]
    return ("The two images show " + "; ".join(parts) + ".") if parts else ""
