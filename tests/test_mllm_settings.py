"""Settings, the level-word token check, batching helpers and the import without transformers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cdbench.data import LEVEL_WEIGHTS, LEVELS
from cdbench.errors import ModelError
from cdbench.models.mllm.settings import (
    DESCRIBE_INSTRUCTION,
    SCORE_ANSWER_PREFIX,
    MLLMSettings,
    join_prompt,
    question_with_images,
)


def test_defaults_are_the_published_ones():
    s = MLLMSettings()
    assert s.level_words == LEVELS and s.level_weights == LEVEL_WEIGHTS
    assert SCORE_ANSWER_PREFIX == "The color difference between these two images is"
    assert DESCRIBE_INSTRUCTION.startswith("Please provide a descriptive analysis for the color difference")
    d = s.to_dict()
    assert d["level_words"] == list(LEVELS) and d["do_sample"] is False and d["max_new_tokens"] == 256


def test_the_instruction_is_the_m_spcd_one(shared_data):
    import json

    items = json.loads((shared_data / "m-spcd" / "depict_task" / "depict_test.json").read_text())
    assert {it["text"] for it in items} == {DESCRIBE_INSTRUCTION}


def test_split_options_and_validation():
    s, rest = MLLMSettings.split_options({"max_new_tokens": 7, "device": "cpu", "do_sample": True})
    assert s.max_new_tokens == 7 and s.do_sample and rest == {"device": "cpu"}
    assert s.generation_kwargs()["temperature"] == 1.0
    assert MLLMSettings().generation_kwargs()["temperature"] is None  # greedy: no sampling knobs
    for bad in ({"level_words": ("a", "b")}, {"level_words": ("x",) * 5}, {"image_position": "middle"},
                {"level_token": "last"}, {"max_new_tokens": 0}, {"do_sample": True, "temperature": 0.0}):
        with pytest.raises(ModelError):
            MLLMSettings(**bad)
    with pytest.raises(TypeError):
        MLLMSettings(level_weights=(1, 2, 3, 4, 5))  # the weights are cdbench.data's, not an option


def test_prompt_helpers():
    assert join_prompt("USER: q ASSISTANT:", "The x is") == "USER: q ASSISTANT: The x is"
    assert join_prompt("<|im_start|>assistant\n", "The x is") == "<|im_start|>assistant\nThe x is"
    assert question_with_images("Q?", "<i>", "after") == "Q?\n<i><i>"
    assert question_with_images("Q?", "<i>", "before") == "<i><i>\nQ?"


class WordTokenizer:
    """Splits on spaces; words listed in ``pieces`` encode to several ids."""

    def __init__(self, pieces=None):
        self.vocab: dict[str, int] = {}
        self.pieces = pieces or {}

    def _id(self, tok):
        return self.vocab.setdefault(tok, len(self.vocab))

    def __call__(self, text, add_special_tokens=False):
        ids = []
        for w in text.split(" "):
            parts = self.pieces.get(w, [w])
            ids += [self._id(p) for p in parts]
        return {"input_ids": ids}

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.vocab.items()}[i]


def test_level_token_ids_single_and_first():
    from cdbench.models.mllm.level_scoring import level_token_ids

    tok = WordTokenizer()
    ids = level_token_ids(tok, LEVELS, SCORE_ANSWER_PREFIX)
    assert [tok.convert_ids_to_tokens(i) for i in ids] == list(LEVELS)
    split = WordTokenizer({"negligible": ["neg", "ligible"]})
    with pytest.raises(ModelError, match=r"'negligible' is 2 tokens \['neg', 'ligible'\]"):
        level_token_ids(split, LEVELS, SCORE_ANSWER_PREFIX)
    ids = level_token_ids(split, LEVELS, SCORE_ANSWER_PREFIX, policy="first")
    assert split.convert_ids_to_tokens(ids[0]) == "neg"
    same = WordTokenizer({"slight": ["sev"], "severe": ["sev", "ere"]})
    with pytest.raises(ModelError, match="share tokens"):
        level_token_ids(same, LEVELS, SCORE_ANSWER_PREFIX, policy="first")


def test_level_probabilities_and_values():
    torch = pytest.importorskip("torch")
    from cdbench.models.mllm.level_scoring import level_probabilities, level_values

    logits = torch.randn(3, 50, dtype=torch.float32)
    ids = [7, 3, 11, 40, 2]
    p = level_probabilities(logits, ids)
    e = np.exp(logits.double().numpy()[:, ids])
    manual = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(p, manual, atol=1e-12)
    np.testing.assert_allclose(level_values(p), 5 * manual @ np.array([0, .25, .5, .75, 1]), atol=1e-12)
    one_hot = torch.full((1, 50), -1e4)
    one_hot[0, 40] = 10.0
    assert level_values(level_probabilities(one_hot, ids))[0] == pytest.approx(3.75)


def test_left_pad_and_positions():
    torch = pytest.importorskip("torch")
    from cdbench.models.mllm.batching import left_pad, positions_from_mask

    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions_from_mask(mask).tolist() == [[0, 1, 2], [1, 1, 0]]
    assert ids.dtype == torch.long


def test_prefetch_keeps_order_and_runs_ahead():
    from cdbench.models.mllm.batching import prefetch

    seen = []
    lock = threading.Lock()

    def prep(b):
        with lock:
            seen.append(b)
        return b * 10

    out = []
    for k, v in enumerate(prefetch(list(range(6)), prep, workers=2, depth=2)):
        if k == 0:  # the next batches get prepared while the consumer still holds the first
            for _ in range(300):
                if len(seen) >= 3:
                    break
                time.sleep(0.01)
            assert len(seen) >= 3
        out.append(v)
    assert out == [0, 10, 20, 30, 40, 50]
    assert list(prefetch([1, 2], prep, workers=0)) == [10, 20]


def test_batch_runner_halves_on_out_of_memory():
    pytest.importorskip("torch")
    from cdbench.models.mllm.batching import BatchRunner

    calls = []

    def compute(batch):
        calls.append(len(batch))
        if len(batch) > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 2 for x in batch]

    r = BatchRunner(8, workers=1)
    items = list(range(20))
    assert r.run(items, lambda chunk: list(chunk), compute) == [x * 2 for x in items]
    assert r.batch_size == 2 and max(calls[calls.index(2):]) <= 3
    with pytest.raises(RuntimeError, match="boom"):
        BatchRunner(2, workers=0).run([1, 2], list, lambda b: (_ for _ in ()).throw(RuntimeError("boom")))


def test_import_without_transformers(tmp_path):
    """The package imports and registers without transformers; using it names the missing extra."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "mplug_owl2"}')
    code = f"""
import sys
sys.modules["transformers"] = None  # as if not installed
import cdbench.models.mllm
from cdbench import create_model
from cdbench.errors import ModelError
try:
    create_model({str(folder)!r})
except ModelError as e:
    print("ERR", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "cdbench[mllm]" in out.stdout
