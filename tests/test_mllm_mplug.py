"""Q-Align level scoring and CD-Reasoning describing with a tiny random mPLUG-Owl2 folder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cdbench import create_model  # noqa: E402
from cdbench.data import LEVEL_WEIGHTS, LEVELS  # noqa: E402
from cdbench.errors import ModelError  # noqa: E402
from cdbench.models.mllm.mplug import MPLUGOwl2CDModel  # noqa: E402
from cdbench.models.mllm.settings import DESCRIBE_INSTRUCTION, SCORE_ANSWER_PREFIX  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from cdbench.models.mplug_owl2 import build_tiny_mplug_owl2

    return build_tiny_mplug_owl2(tmp_path_factory.mktemp("tiny") / "tiny-mplug", seed=1, weight_scale=3.0)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(11)
    out = []
    for i in range(4):
        a = rng.integers(0, 256, (50 + 10 * i, 64, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-80, 80, (1, 1, 3)), 0, 255).astype(np.uint8)
        out.append((a, b))
    return out


@pytest.fixture(scope="module")
def model(folder):
    return create_model(folder, batch_size=3, max_new_tokens=4, workers=2)


def test_create_model_detects_mplug_owl2(model):
    assert isinstance(model, MPLUGOwl2CDModel)
    toks = model.tokenizer.convert_ids_to_tokens(model.level_token_ids)
    assert [t.lstrip("▁") for t in toks] == list(LEVELS)


def test_batched_scores_equal_single_pair_scores(model, pairs):
    batched = model.score(pairs)
    model.batch_size = 1
    try:
        single = model.score(pairs)
    finally:
        model.batch_size = 3
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)
    assert np.all((batched >= 0) & (batched <= 5)) and np.ptp(batched) > 1e-3


def test_level_value_is_the_softmax_of_the_level_logits(model, pairs):
    """Manual: the original's way (template, tokenizer_image_token, one pair, plain forward)."""
    from cdbench.models.mplug_owl2.conversation import build_prompt, tokenizer_image_token

    probs = model.level_probabilities(pairs[:2])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
    prompt = build_prompt("How would you describe the color difference in these two images?\n<|image|><|image|>",
                          SCORE_ANSWER_PREFIX)
    assert prompt == model.score_prompt
    ids = tokenizer_image_token(prompt, model.tokenizer, return_tensors="pt")[None]
    word_ids = [model.tokenizer(w, add_special_tokens=True).input_ids[1] for w in LEVELS]  # Q-Align's way
    assert word_ids == model.level_token_ids
    for k, (a, b) in enumerate(pairs[:2]):
        pv = model.image_processor([a, b])
        with torch.no_grad():
            logits = model.model(input_ids=ids, images=pv).logits[0, -1].double()
        p = torch.softmax(logits[word_ids], -1).numpy()
        np.testing.assert_allclose(probs[k], p, atol=1e-5)
        assert model.score([(a, b)])[0] == pytest.approx(5 * float(p @ np.asarray(LEVEL_WEIGHTS)), abs=1e-5)


def test_describe_greedy_batched_equals_single(model, pairs):
    batched = model.describe(pairs)
    assert len(batched) == len(pairs) and all(isinstance(t, str) for t in batched)
    model.batch_size = 1
    try:
        assert batched == model.describe(pairs)
    finally:
        model.batch_size = 3
    # and equals the model's own generate on one unpadded pair
    a, b = pairs[0]
    ids = torch.tensor([model._prompt_ids["describe"]])
    pv = model.image_processor([a, b])
    out = model.model.generate(ids, images=pv, max_new_tokens=4, do_sample=False)
    assert batched[0] == model.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def test_settings_recorded(model):
    s = model.info()["settings"]
    assert s["family"] == "mplug_owl2" and s["conversation"] == "mplug_owl2"
    assert s["image_processor"]["size"] == 56 and s["image_processor"]["image_aspect_ratio"] is None
    assert s["level_words"] == list(LEVELS) and s["level_weights"] == list(LEVEL_WEIGHTS)
    assert s["describe_instruction"] == DESCRIBE_INSTRUCTION
    assert s["describe_prompt"].startswith("USER: Please provide") and s["describe_prompt"].endswith("ASSISTANT:")
    assert s["score_prompt"].endswith(" ASSISTANT: " + SCORE_ANSWER_PREFIX)
    assert s["max_new_tokens"] == 4 and s["do_sample"] is False and s["lora"] is False


def test_image_aspect_ratio(folder, pairs):
    crop = create_model(folder)  # config.json has no image_aspect_ratio: CD-Reasoning's centre crop
    pad = create_model(folder, image_aspect_ratio="pad")  # Q-Align's square padding
    assert crop.settings()["image_processor"]["image_aspect_ratio"] is None
    assert pad.settings()["image_processor"]["image_aspect_ratio"] == "pad"
    sq = [(p[0][:50, :50], p[1][:50, :50]) for p in pairs[:2]]
    np.testing.assert_allclose(crop.score(sq), pad.score(sq), atol=1e-6)  # square: identical
    assert np.abs(crop.score(pairs[2:]) - pad.score(pairs[2:])).max() > 1e-4  # non-square: padded
    with pytest.raises(ModelError, match="image_aspect_ratio"):
        create_model(folder, image_aspect_ratio="stretch")


def test_split_level_word_fails_loudly(tmp_path):
    from cdbench.models.mllm.tiny import build_tiny_tokenizer
    from cdbench.models.mplug_owl2 import build_tiny_mplug_owl2

    folder = build_tiny_mplug_owl2(tmp_path / "m", seed=2)
    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        (folder / f).unlink(missing_ok=True)
    build_tiny_tokenizer(folder, split_words=("severe",))
    with pytest.raises(ModelError, match="'severe' is [2-9] tokens"):
        create_model(folder)
    assert create_model(folder, level_token="first").level_token_ids[4] >= 0


def test_sampling_options(folder, pairs):
    m = create_model(folder, do_sample=True, temperature=0.7, top_p=0.9, seed=5, max_new_tokens=5, workers=0)
    first = m.describe(pairs[:2])
    assert first == m.describe(pairs[:2])  # seeded
    assert m.settings()["temperature"] == 0.7
    with pytest.raises(ModelError, match="temperature"):
        create_model(folder, do_sample=True, temperature=0)


def test_lora_release_folder(folder, model, pairs, tmp_path):
    """A CD-Reasoning LoRA release (adapter + non_lora_trainables.bin) scores as the merged model."""
    import json

    from cdbench.models.mplug_owl2.lora import load_lora_model

    base = model.model
    n, r = base.config.num_hidden_layers, 2
    targets = [f"model.layers.{i}.self_attn.q_proj" for i in range(n)]
    targets += [f"model.layers.{i}.self_attn.v_proj.multiway.1" for i in range(n)]
    lora = tmp_path / "cd-reasoning-lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": "not/a/local/folder", "bias": "none", "fan_in_fan_out": False,
        "inference_mode": True, "lora_alpha": 4, "lora_dropout": 0.05, "peft_type": "LORA", "r": r,
        "target_modules": targets, "task_type": "CAUSAL_LM"}))
    g = torch.Generator().manual_seed(4)
    adapter = {}
    for t in targets:
        mod = base.get_submodule(t)
        adapter[f"base_model.model.{t}.lora_A.weight"] = torch.randn(r, mod.in_features, generator=g)
        adapter[f"base_model.model.{t}.lora_B.weight"] = torch.randn(mod.out_features, r, generator=g) * 0.3
    torch.save(adapter, lora / "adapter_model.bin")
    torch.save({f"base_model.model.model.visual_abstractor.{k}": v.detach() * 1.1
                for k, v in base.model.visual_abstractor.named_parameters()}, lora / "non_lora_trainables.bin")
    base.config.save_pretrained(lora)

    with pytest.raises(ModelError, match="not a local folder"):
        create_model(lora)
    m = create_model(lora, base=folder)
    assert isinstance(m, MPLUGOwl2CDModel) and m.settings()["lora"] is True
    merged = load_lora_model(lora, folder).eval()
    a, b = pairs[0]
    ids = torch.tensor([m._prompt_ids["score"]])
    with torch.no_grad():
        logits = merged(input_ids=ids, images=m.image_processor([a, b])).logits[0, -1].double()
    p = torch.softmax(logits[m.level_token_ids], -1).numpy()
    np.testing.assert_allclose(m.level_probabilities([(a, b)])[0], p, atol=1e-5)
    assert abs(m.score([(a, b)])[0] - model.score([(a, b)])[0]) > 1e-4  # the adapter matters


@pytest.mark.gpu
def test_cuda_bf16_scoring_matches_cpu_float32(folder, model, pairs):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gpu = create_model(folder, device="cuda")
    assert gpu.dtype == torch.bfloat16 and gpu.batch_size > 1  # bf16 and a memory-derived batch size
    np.testing.assert_allclose(gpu.score(pairs), model.score(pairs), atol=0.05)
    assert all(isinstance(t, str) for t in gpu.describe(pairs[:2]))


def test_a_finetuned_folder_is_scored_with_the_image_position_it_was_trained_with(tmp_path):
    """``cdbench finetune`` records its settings in ``finetune.json``; the scorer takes the image
    position from there unless the caller sets it."""
    import json

    from cdbench.models.mplug_owl2 import build_tiny_mplug_owl2

    folder = build_tiny_mplug_owl2(tmp_path / "ft", seed=2)
    (folder / "finetune.json").write_text(json.dumps({"config": {"image_position": "before"}}))
    assert create_model(folder, max_new_tokens=2).info()["settings"]["image_position"] == "before"
    assert create_model(folder, image_position="after").info()["settings"]["image_position"] == "after"
    (folder / "finetune.json").write_text("not json")
    assert create_model(folder).info()["settings"]["image_position"] == "after"
