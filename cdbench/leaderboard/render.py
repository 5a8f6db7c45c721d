"""Render the board: a self-contained static page (``index.html``) and a Markdown table.

The page needs no server and loads nothing from the network: styles, the sorting script and the
scatter plots (inline SVG) are all in the one file. Every string that comes from a submission is
HTML-escaped; model links are shown only for http(s) URLs (the schema's rule) and never fetched.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cdbench.io import atomic_write_text
from cdbench.leaderboard.board import RANK_RULES, SUBSETS, find_metric, table_entries

SUBSET_TITLES = {"all": "All", "aligned": "Aligned", "not_aligned": "Not aligned"}
SCORE_COLUMNS: tuple[tuple[str, str, bool], ...] = (  # (metric, header, higher is better)
    ("srcc", "SRCC", True), ("plcc", "PLCC", True), ("stress", "STRESS", False))
DESCRIPTION_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("macro_f1", "Attr. macro-F1", True), ("accuracy", "Attr. accuracy", True), ("parse_rate", "Parse rate", True),
    ("bleu1", "BLEU-1", True), ("bleu4", "BLEU-4", True), ("meteor", "METEOR", True), ("rouge_l", "ROUGE-L", True),
    ("cider", "CIDEr", True), ("bertscore_f1", "BERTScore F1", True))

METRIC_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("SRCC", "Spearman rank correlation between predictions and human scores (scipy). The ranking key: "
             "higher is better; ties are broken by PLCC."),
    ("PLCC", "Pearson correlation after the 5-parameter logistic mapping of CD papers, "
             "beta1*(0.5 - 1/(1+exp(beta2*(x-beta3)))) + beta4*x + beta5, fitted per subset."),
    ("KRCC", "Kendall rank correlation (scipy)."),
    ("STRESS", "Standardised residual sum of squares (Garcia et al., JOSA A 2007), 0..100, lower is better: "
               "100*sqrt(sum((dE-F*dV)^2)/(F^2*sum(dV^2))) with F = sum(dE^2)/sum(dE*dV). Level-scale "
               "models are mapped to the human score scale first."),
    ("Significance", "Against the table's leader on all pairs: the STRESS F-test (F = STRESS_A^2/STRESS_B^2, "
                     "(N-1, N-1) degrees of freedom, alpha = 0.05): \u25b2 significantly better, \u25bc "
                     "significantly worse, = not significant; and whether the scene-bootstrap 95% confidence "
                     "intervals of SRCC overlap (\u2248) or are separate (\u2260)."),
    ("Subsets", "All pairs; aligned pairs (an edit of the same capture); not aligned pairs (two smartphones' "
                "captures of a scene, spatially misaligned)."),
    ("Descriptions", "Attribute macro-F1 / accuracy: the seven colour attributes' severities parsed from each "
                     "description against the expert reference (parse rate = share of descriptions where they "
                     "parse). BLEU, METEOR, ROUGE-L, CIDEr and BERTScore compare the text with the reference."),
)

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1d232a;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;margin-top:2.2rem}
.sub{color:#5b6670;margin-top:0}
table.board{border-collapse:collapse;width:100%;margin:.6rem 0;font-variant-numeric:tabular-nums}
table.board th,table.board td{padding:.35rem .55rem;border-bottom:1px solid #e3e7eb;text-align:right;white-space:nowrap}
table.board th{background:#f4f6f8;position:sticky;top:0}
table.board th.sortable{cursor:pointer;user-select:none}
table.board th.sortable:hover{background:#e8edf2}
table.board th[aria-sort=ascending]::after{content:" \\25b2";font-size:.7em}
table.board th[aria-sort=descending]::after{content:" \\25bc";font-size:.7em}
table.board td.text,table.board th.text{text-align:left;white-space:normal}
table.board tr.group th{background:#fff;border-bottom:2px solid #c9d1d9;text-align:center}
td.best{font-weight:700}
.mark{font-size:.85em;margin-left:.25em;color:#5b6670}
.mark.better{color:#1a7f37}.mark.worse{color:#cf222e}
.ci{display:block;font-size:.75em;color:#7a858f}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #e3e7eb;border-radius:6px;padding:.5rem}
figcaption{font-size:.85rem;text-align:center;color:#3d4650}
dl.defs dt{font-weight:600;margin-top:.6rem} dl.defs dd{margin-left:1rem;color:#3d4650}
.legend span{margin-right:1rem;font-size:.85rem}
"""

_JS = """
(function(){
  function value(td){var v=td.getAttribute('data-value');
    if(v===null||v===''){return null}var n=Number(v);return isNaN(n)?v.toLowerCase():n}
  document.querySelectorAll('table.board').forEach(function(table){
    var heads=table.querySelectorAll('th.sortable');
    heads.forEach(function(th){th.addEventListener('click',function(){
      var col=Number(th.getAttribute('data-col'));
      var asc=th.getAttribute('aria-sort')==='descending'||
              (th.getAttribute('aria-sort')===null&&th.getAttribute('data-better')==='lower');
      heads.forEach(function(h){h.removeAttribute('aria-sort')});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=value(a.cells[col]),y=value(b.cells[col]);
        if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
        return (x<y?-1:1)*(asc?1:-1)});
      rows.forEach(function(r){body.appendChild(r)});
    })});
  });
})();
"""


def _fmt(v: float | None, digits: int = 4) -> str:
    return "\u2013" if v is None else f"{v:.{digits}f}"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _model_cell(entry: Mapping[str, Any]) -> str:
    m = entry["model"]
    name = _e(m["name"])
    url = m.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        name = f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">{name}</a>'
    title = f' title="{_e(m["description"])}"' if m.get("description") else ""
    return f'<td class="text" data-value="{_e(m["name"].lower())}"{title}>{name}</td>'


def _kind_cell(entry: Mapping[str, Any]) -> str:
    kind = _e(entry["model"].get("kind", ""))
    return f'<td class="text" data-value="{kind}">{kind}</td>'


def _sig_mark(sig: Mapping[str, Any] | None) -> str:
    if not sig:
        return ""
    if sig.get("stress") == "leader":
        return '<span class="mark">leader</span>'
    sym = {"better": ("\u25b2", "better"), "worse": ("\u25bc", "worse"), "same": ("=", "same")}.get(
        sig.get("stress"), None)
    parts = []
    if sym:
        p = sig.get("stress_p")
        tip = f"STRESS F-test vs {sig['against']}: {sym[1]}" + (f" (p = {p:.3g})" if isinstance(p, float) else "")
        parts.append(f'<span class="mark {sym[1]}" title="{_e(tip)}">{sym[0]}</span>')
    ci = {"overlap": "\u2248", "separate": "\u2260"}.get(sig.get("srcc_ci"))
    if ci:
        parts.append(f'<span class="mark" title="{_e("SRCC 95% CI vs " + sig["against"] + ": " + sig["srcc_ci"])}">'
                     f'{ci}</span>')
    return "".join(parts)


def _score_table(rows: Sequence[Mapping[str, Any]]) -> str:
    best: dict[tuple[str, str], float] = {}
    for subset in SUBSETS:
        for metric, _, higher in SCORE_COLUMNS:
            vals = [v for v in (find_metric(e["metrics"], metric, subset) for e in rows) if v is not None]
            if vals:
                best[(subset, metric)] = max(vals) if higher else min(vals)
    head1 = '<tr class="group"><th colspan="4"></th>' + "".join(
        f'<th colspan="{len(SCORE_COLUMNS)}">{SUBSET_TITLES[s]}</th>' for s in SUBSETS) + "<th></th></tr>"
    cols = [("#", "lower", ' class="sortable"'), ("Model", "higher", ' class="text sortable"'),
            ("Kind", "higher", ' class="text sortable"'), ("N", "higher", ' class="sortable"')]
    head2 = "<tr>"
    col = 0
    for title, better, cls in cols:
        head2 += f'<th{cls} data-col="{col}" data-better="{better}">{title}</th>'
        col += 1
    for s in SUBSETS:
        for _metric, title, higher in SCORE_COLUMNS:
            head2 += (f'<th class="sortable" data-col="{col}" data-better="{"higher" if higher else "lower"}" '
                      f'title="{_e(title + " on " + SUBSET_TITLES[s].lower() + " pairs")}">{title}</th>')
            col += 1
    head2 += '<th class="text">Significance vs leader</th></tr>'
    body = []
    for e in rows:
        cells = [f'<td data-value="{e.get("rank", "")}">{e.get("rank", "")}</td>', _model_cell(e), _kind_cell(e)]
        n_all = (e["metrics"].get("all") or {}).get("n", e.get("n")) if isinstance(e["metrics"].get("all"), Mapping) \
            else e.get("n")
        cells.append(f'<td data-value="{n_all or ""}">{n_all or ""}</td>')
        for s in SUBSETS:
            for metric, _, _ in SCORE_COLUMNS:
                v = find_metric(e["metrics"], metric, s)
                cls = ' class="best"' if v is not None and best.get((s, metric)) == v else ""
                ci = ((e["metrics"].get(s) or {}).get("ci95") or {}).get(metric) \
                    if isinstance(e["metrics"].get(s), Mapping) else None
                tip = ""
                if isinstance(ci, list) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
                    tip = f' title="95% CI [{ci[0]:.4f}, {ci[1]:.4f}]"'
                digits = 2 if metric == "stress" else 4
                cells.append(f'<td{cls}{tip} data-value="{"" if v is None else repr(v)}">{_fmt(v, digits)}</td>')
        cells.append(f'<td class="text">{_sig_mark(e.get("significance"))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="board"><thead>{head1}{head2}</thead><tbody>' + "\n".join(body) + "</tbody></table>")


def _description_table(rows: Sequence[Mapping[str, Any]]) -> str:
    present = [c for c in DESCRIPTION_COLUMNS if any(find_metric(e["metrics"], c[0]) is not None for e in rows)]
    head = ('<tr><th class="sortable" data-col="0" data-better="lower">#</th>'
            '<th class="text sortable" data-col="1" data-better="higher">Model</th>'
            '<th class="text sortable" data-col="2" data-better="higher">Kind</th>'
            '<th class="sortable" data-col="3" data-better="higher">N</th>')
    for i, (_, title, higher) in enumerate(present):
        head += f'<th class="sortable" data-col="{i + 4}" data-better="{"higher" if higher else "lower"}">{title}</th>'
    head += "</tr>"
    body = []
    for e in rows:
        cells = [f'<td data-value="{e.get("rank", "")}">{e.get("rank", "")}</td>', _model_cell(e), _kind_cell(e),
                 f'<td data-value="{e.get("n", "")}">{e.get("n", "")}</td>']
        for metric, _, _ in present:
            v = find_metric(e["metrics"], metric)
            cells.append(f'<td data-value="{"" if v is None else repr(v)}">{_fmt(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="board"><thead>{head}</thead><tbody>' + "\n".join(body) + "</tbody></table>"


def scatter_svg(entry: Mapping[str, Any], width: int = 260, height: int = 220) -> str:
    """An inline SVG scatter plot of an entry's (prediction, human score) sample, coloured by
    alignment (blue aligned, orange not aligned)."""
    sc = entry.get("scatter") or {}
    xs, ys, al = sc.get("prediction") or [], sc.get("human") or [], sc.get("aligned") or []
    pad_l, pad_b, pad_t, pad_r = 38, 30, 8, 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{_e("scatter plot of " + entry["model"]["name"])}">',
           f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" height="{height - pad_t - pad_b}" '
           'fill="#fbfcfd" stroke="#c9d1d9"/>']
    pts = [(x, y, a) for x, y, a in zip(xs, ys, al) if x is not None and y is not None]
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
        w, h = width - pad_l - pad_r, height - pad_t - pad_b

        def px(x: float) -> float:
            return pad_l + 4 + (x - x0) / (x1 - x0) * (w - 8)

        def py(y: float) -> float:
            return pad_t + h - 4 - (y - y0) / (y1 - y0) * (h - 8)

        for x, y, a in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{"#1f6feb" if a else "#e8710a"}" '
                       'fill-opacity=".6"/>')
        for v, anchor in ((x0, "start"), (x1, "end")):
            out.append(f'<text x="{px(v):.1f}" y="{height - 16}" font-size="9" text-anchor="{anchor}">{_num(v)}</text>')
        for v in (y0, y1):
            out.append(f'<text x="{pad_l - 3}" y="{py(v) + 3:.1f}" font-size="9" text-anchor="end">{_num(v)}</text>')
    else:
        out.append(f'<text x="{width / 2}" y="{height / 2}" font-size="11" text-anchor="middle">no points</text>')
    out.append(f'<text x="{pad_l + (width - pad_l - pad_r) / 2}" y="{height - 3}" font-size="10" '
               'text-anchor="middle">prediction</text>')
    out.append(f'<text x="10" y="{pad_t + (height - pad_t - pad_b) / 2}" font-size="10" text-anchor="middle" '
               f'transform="rotate(-90 10 {pad_t + (height - pad_t - pad_b) / 2})">human score</text>')
    out.append("</svg>")
    return "".join(out)


def _num(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else ""


def render_html(board: Mapping[str, Any], title: str = "cdbench leaderboard") -> str:
    """The whole static page as one HTML string."""
    sections = []
    tables = table_entries(board)
    if not tables:
        sections.append("<p>No entries yet. Submit one with <code>cdbench leaderboard submit</code>.</p>")
    for (task, dataset, split), rows in tables.items():
        rule = RANK_RULES.get(task)
        heading = f"{'Colour-difference scores' if task == 'scores' else 'Descriptions'}: {dataset} / {split}"
        note = f"Ranked by {rule.primary.upper() if task == 'scores' else rule.primary} on all pairs " \
               f"(ties by {rule.tie.upper() if task == 'scores' else rule.tie})." if rule else ""
        table = _score_table(rows) if task == "scores" else _description_table(rows)
        sections.append(f'<section data-task="{_e(task)}"><h2>{_e(heading)}</h2><p class="sub">{_e(note)} '
                        f'Click a column header to sort.</p>{table}')
        if task == "scores":
            n_points = max((len((e.get("scatter") or {}).get("prediction") or []) for e in rows), default=0)
            figs = "".join(f"<figure>{scatter_svg(e)}<figcaption>{_e(e['model']['name'])}</figcaption></figure>"
                           for e in rows)
            sections.append('<h3>Predictions against human scores</h3><p class="legend">'
                            '<span style="color:#1f6feb">\u25cf aligned</span>'
                            '<span style="color:#e8710a">\u25cf not aligned</span> '
                            f'<span>(up to {n_points} pairs per model, evenly sampled)</span></p>'
                            f'<div class="plots">{figs}</div>')
        sections.append("</section>")
    defs = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in METRIC_DEFINITIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class=\"sub\">Perceptual colour difference of smartphone photographs "
            "(SPCD / M-SPCD). Every metric is recomputed from the submitted predictions by cdbench.</p>"
            + "".join(sections)
            + f'<h2>Metric definitions</h2><dl class="defs">{defs}</dl>'
            f"<script>{_JS}</script></body></html>\n")


_MD_MARKS = {"better": "\u25b2", "worse": "\u25bc", "same": "=", "leader": "\u2014"}


def _md(text: Any) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(board: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown tables of the board (one per task/dataset/split)."""
    out = []
    for (task, dataset, split), rows in table_entries(board).items():
        out.append(f"### {'Scores' if task == 'scores' else 'Descriptions'}: {_md(dataset)} / {_md(split)}\n")
        if task == "scores":
            head = ["#", "Model"] + [f"{t} ({SUBSET_TITLES[s].lower()})" for s in SUBSETS for _, t, _ in SCORE_COLUMNS]
            head.append("vs leader")
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join(["---:", ":---"] + ["---:"] * (len(head) - 3) + [":---:"]) + "|")
            for e in rows:
                vals = [_fmt(find_metric(e["metrics"], m, s), 2 if m == "stress" else 4)
                        for s in SUBSETS for m, _, _ in SCORE_COLUMNS]
                sig = e.get("significance") or {}
                mark = _MD_MARKS.get(sig.get("stress"), "")
                out.append("| " + " | ".join([str(e.get("rank", "")), _md(e["model"]["name"]), *vals, mark]) + " |")
        else:
            present = [c for c in DESCRIPTION_COLUMNS if any(find_metric(e["metrics"], c[0]) is not None for e in rows)]
            head = ["#", "Model"] + [t for _, t, _ in present]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "|".join(["---:", ":---"] + ["---:"] * len(present)) + "|")
            for e in rows:
                out.append("| " + " | ".join([str(e.get("rank", "")), _md(e["model"]["name"]),
                                               *[_fmt(find_metric(e["metrics"], m)) for m, _, _ in present]]) + " |")
        out.append("")
    if any(e["task"] == "scores" for e in board["entries"]):
        out.append("\u25b2/\u25bc/=: STRESS significantly better / worse / not different than the leader "
                   "(F-test, Garcia et al. 2007, alpha 0.05).\n")
    return "\n".join(out)


def render_site(board: Mapping[str, Any], out_dir: str | Path, title: str = "cdbench leaderboard") -> dict[str, Path]:
    """Write ``index.html`` and ``leaderboard.md`` to ``out_dir`` (atomically, file by file)."""
    out_dir = Path(out_dir)
    index, md = out_dir / "index.html", out_dir / "leaderboard.md"
    atomic_write_text(index, render_html(board, title))
    atomic_write_text(md, render_markdown(board))
    return {"html": index, "markdown": md}
