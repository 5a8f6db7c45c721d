"""The Hugging Face image-text-to-text adapter on a tiny random LLaVA built offline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cdbench import create_model  # noqa: E402
from cdbench.data import LEVEL_WEIGHTS, LEVELS, level_value_from_probs  # noqa: E402
from cdbench.errors import ModelError  # noqa: E402
from cdbench.models.mllm.hf_vlm import HFVisionLanguageCDModel  # noqa: E402
from cdbench.models.mllm.tiny import build_tiny_llava  # noqa: E402


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny") / "tiny-llava", seed=1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Five pairs of different sizes and kinds: PNG paths, uint8 arrays, a float array."""
    from PIL import Image

    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("imgs")
    out = []
    for i in range(5):
        a = rng.integers(0, 256, (36 + 3 * i, 44, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-60, 60, a.shape), 0, 255).astype(np.uint8)
        if i % 2 == 0:
            pa, pb = folder / f"a{i}.png", folder / f"b{i}.png"
            Image.fromarray(a).save(pa)
            Image.fromarray(b).save(pb)
            out.append((str(pa), pb))
        else:
            out.append((a, b.astype(np.float32) / 255.0 if i == 3 else b))
    return out


@pytest.fixture(scope="module")
def model(llava_folder):
    return create_model(llava_folder, batch_size=4, max_new_tokens=5, workers=2)


def test_create_model_detects_the_folder(model):
    assert isinstance(model, HFVisionLanguageCDModel)
    assert (model.kind, model.scale, model.can_describe) == ("mllm", "level", True)


def test_batched_scores_equal_single_pair_scores(model, llava_folder, pairs):
    batched = model.score(pairs)
    single = create_model(llava_folder, batch_size=1).score(pairs)
    assert batched.shape == (len(pairs),) and batched.dtype == np.float64
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)
    assert np.all((batched >= 0) & (batched <= 5))
    assert np.ptp(batched) > 1e-3  # the images matter


def test_level_probabilities_are_the_softmax_of_the_model_logits(model, pairs):
    probs = model.level_probabilities(pairs[:3])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    # manual: one plain forward on the processor's inputs, last position, the five level-word logits
    from cdbench.data.images import load_pairs

    decoded = load_pairs(pairs[:3])
    inputs = model.processor(text=[model.score_prompt] * 3, images=[[a, b] for a, b in decoded],
                             padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model.model(**inputs).logits[:, -1, :].double()
    sel = logits[:, model.level_token_ids]
    manual = torch.softmax(sel, dim=-1).numpy()
    np.testing.assert_allclose(probs, manual, atol=1e-5)
    expected = 5 * (manual @ np.asarray(LEVEL_WEIGHTS))
    np.testing.assert_allclose(model.score(pairs[:3]), expected, atol=1e-5)
    np.testing.assert_allclose(level_value_from_probs(manual), expected, atol=1e-12)


def test_level_token_ids_are_the_level_words(model):
    toks = model.tokenizer.convert_ids_to_tokens(model.level_token_ids)
    assert [t.lstrip("Ġ▁") for t in toks] == list(LEVELS)


def test_describe_greedy_batched_equals_single(model, llava_folder, pairs):
    batched = model.describe(pairs)
    single = create_model(llava_folder, batch_size=1, max_new_tokens=5).describe(pairs)
    assert batched == single
    assert all(isinstance(t, str) for t in batched) and len(batched) == len(pairs)


def test_describe_sampling_is_seeded(llava_folder, pairs):
    a = create_model(llava_folder, do_sample=True, seed=3, temperature=1.5, max_new_tokens=6, workers=0)
    assert a.describe(pairs[:2]) == a.describe(pairs[:2])


def test_settings_are_recorded(model):
    info = model.info()
    s = info["settings"]
    assert s["level_words"] == list(LEVELS) and s["level_weights"] == list(LEVEL_WEIGHTS)
    assert s["score_prompt"].endswith("ASSISTANT: The color difference between these two images is")
    assert s["describe_prompt"].count("<image>") == 2
    assert s["max_new_tokens"] == 5 and s["do_sample"] is False and s["dtype"] == "float32"
    assert s["model_type"] == "llava"


def test_image_position_before(llava_folder):
    m = create_model(llava_folder, image_position="before")
    assert m.score_prompt.startswith("USER: <image><image>How would")


def test_split_level_word_fails_loudly(tmp_path, pairs):
    folder = build_tiny_llava(tmp_path / "split", split_words=("negligible",))
    with pytest.raises(ModelError, match="level word 'negligible' is .* tokens"):
        create_model(folder)
    m = create_model(folder, level_token="first")  # Q-Align's first-token behaviour, on request
    assert m.score(pairs[:1]).shape == (1,)


def test_bad_options_and_pairs(llava_folder):
    with pytest.raises(ModelError, match="level_words"):
        create_model(llava_folder, level_words=("a", "b"))
    with pytest.raises(TypeError):
        create_model(llava_folder, no_such_option=1)
    m = create_model(llava_folder)
    with pytest.raises(ModelError, match="pair 0"):
        m.score([("only-one",)])
    from cdbench.errors import DataError

    with pytest.raises(DataError, match="missing.png"):
        m.score([("missing.png", "missing.png")])


def test_llava_next_mixed_length_batches_equal_single(tmp_path):
    """LLaVA-NeXT: image tokens depend on the aspect ratio, so rows differ in length (left padding)."""
    folder = build_tiny_llava(tmp_path / "next", anyres=True, seed=2)
    rng = np.random.default_rng(3)
    pairs = [(rng.integers(0, 256, (40 + 20 * i, 50, 3), dtype=np.uint8),
              rng.integers(0, 256, (60, 50 + 25 * i, 3), dtype=np.uint8)) for i in range(4)]
    m = create_model(folder, batch_size=4, max_new_tokens=4)
    lengths = m._prepare(pairs, "score")["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # the batch really is padded
    single = create_model(folder, batch_size=1, max_new_tokens=4)
    np.testing.assert_allclose(m.score(pairs), single.score(pairs), atol=1e-4, rtol=0)
    assert m.describe(pairs) == single.describe(pairs)


def _family(kind: str, folder):
    """(create_model options, the prompt's expected ending) of a tiny checkpoint of another family."""
    from cdbench.models.mllm import tiny
    from cdbench.models.mllm.hf_vlm import qwen2_vl_image_processor

    answer = "The color difference between these two images is"
    if kind == "gemma3":  # SigLIP tower, bidirectional image attention, Gemma turns
        tiny.build_tiny_gemma3(folder, seed=4)
        return {}, f"<start_of_turn>model\n{answer}"
    if kind == "idefics3":  # image tiles + global view, pixel-shuffle connector: tokens follow the aspect ratio
        tiny.build_tiny_idefics3(folder, seed=5)
        return {}, f"<end_of_utterance>\nAssistant: {answer}"
    tiny.build_tiny_qwen2_vl(folder, seed=6)  # dynamic resolution, 3-D (M-RoPE) positions under left padding
    return {"processor": qwen2_vl_image_processor(folder)}, f"<|im_start|>assistant\n{answer}"


@pytest.mark.parametrize("kind", ["gemma3", "idefics3", "qwen2_vl"])
def test_other_families_batched_equal_single(tmp_path, kind):
    """Same interface on other architectures; padded mixed-length batches give the single-pair results."""
    options, ending = _family(kind, tmp_path / kind)
    m = create_model(tmp_path / kind, batch_size=4, max_new_tokens=4, **options)
    assert m.settings()["model_type"] == kind and m.score_prompt.endswith(ending)
    rng = np.random.default_rng(9)
    pairs = [(rng.integers(0, 256, (20 + 30 * i, 100 - 15 * i, 3), dtype=np.uint8),
              rng.integers(0, 256, (40, 40 + 20 * i, 3), dtype=np.uint8)) for i in range(4)]
    if kind != "gemma3":  # fixed 4 tokens per image there
        assert len(set(m._prepare(pairs, "score")["attention_mask"].sum(1).tolist())) > 1
    batched, texts = m.score(pairs), m.describe(pairs)
    assert np.ptp(batched) > 1e-4 and all(isinstance(t, str) for t in texts)
    m.batch_size = 1
    np.testing.assert_allclose(m.score(pairs), batched, atol=1e-4, rtol=0)
    assert m.describe(pairs) == texts


def test_a_processor_that_cannot_load_is_one_clear_error(tmp_path):
    """Qwen2-VL's AutoProcessor also builds a video processor; without torchvision the error says so."""
    from transformers.utils import is_torchvision_available

    from cdbench.models.mllm.tiny import build_tiny_qwen2_vl

    if is_torchvision_available():
        pytest.skip("torchvision is installed: the video half of the processor can be built")
    folder = build_tiny_qwen2_vl(tmp_path / "q")
    with pytest.raises(ModelError, match=r"cannot load as an image-text-to-text model .*torchvision") as e:
        create_model(folder)
    assert "\n" not in str(e.value)
