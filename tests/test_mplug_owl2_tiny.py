"""mPLUG-Owl2 on tiny random checkpoints built offline: padding, batching, generation, bf16, LoRA, tokenizer."""

from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cdbench.data.levels import LEVELS  # noqa: E402
from cdbench.errors import ModelError  # noqa: E402
from cdbench.models.mplug_owl2 import (  # noqa: E402
    IMAGE_TOKEN_INDEX,
    MPLUGOwl2LlamaForCausalLM,
    build_tiny_mplug_owl2,
)
from cdbench.models.mplug_owl2.conversation import build_prompt, tokenize_batch, tokenizer_image_token  # noqa: E402

TOL = {"atol": 1e-4, "rtol": 1e-4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # weight_scale 3: peaky attention, so a wrong mask or position would show far above the tolerance
    return build_tiny_mplug_owl2(tmp_path_factory.mktemp("owl") / "tiny", seed=0, weight_scale=3.0)


def _load(folder, impl="eager", dtype=torch.float32):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation=impl, dtype=dtype).eval()


def _batch():
    g = torch.Generator().manual_seed(0)
    seqs = [
        torch.tensor([1, 5, 6, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX, 7, 8, 9]),
        torch.tensor([1, 10, IMAGE_TOKEN_INDEX, 11, 12, IMAGE_TOKEN_INDEX, 13, 14, 15, 16, 17, 18]),
        torch.tensor([1, 20, IMAGE_TOKEN_INDEX, 21]),
    ]
    images = [torch.randn(2, 3, 56, 56, generator=g), torch.randn(2, 3, 56, 56, generator=g),
              torch.randn(1, 3, 56, 56, generator=g)]
    return seqs, images


def _pad(seqs, side):
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl], mask[i, sl] = s, 1
    return ids, mask


def test_builder_writes_a_complete_loadable_folder(tiny, tmp_path):
    names = {p.name for p in tiny.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "preprocessor_config.json",
            "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny / "config.json").read_text())
    assert config["model_type"] == "mplug_owl2"
    assert set(config["visual_config"]) == {"visual_model", "visual_abstractor"}
    model = _load(tiny)
    assert isinstance(model, MPLUGOwl2LlamaForCausalLM)
    # deterministic: the same seed gives the same weights, another seed others
    again = build_tiny_mplug_owl2(tmp_path / "again", seed=0, weight_scale=3.0)
    other = build_tiny_mplug_owl2(tmp_path / "other", seed=1, weight_scale=3.0)
    from safetensors.torch import load_file

    a, b, c = (load_file(str(f / "model.safetensors")) for f in (tiny, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], c["lm_head.weight"])


def test_tiny_tokenizer_is_llama_style_with_single_token_level_words(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 0)
    for word in LEVELS:
        ids = tok(word).input_ids
        assert ids[0] == 1 and len(ids) == 2, (word, ids)
        assert tok.convert_ids_to_tokens(ids[1]) == "▁" + word
    text = "Hello wörld, 42% ✓"
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text  # byte fallback: lossless


def test_prompt_template_and_image_token_insertion(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    prompt = build_prompt("<|image|><|image|>Rate the color difference.", "The color difference between these "
                          "two images is")
    assert prompt == ("USER: <|image|><|image|>Rate the color difference. ASSISTANT: The color difference "
                      "between these two images is")
    ids = tokenizer_image_token(prompt, tok)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    first = tok("USER: ").input_ids[1:]
    assert ids[1:1 + len(first)] == first
    k = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[k + 1] == IMAGE_TOKEN_INDEX and ids.count(IMAGE_TOKEN_INDEX) == 2
    assert ids[k + 2:] == tok("Rate the color difference. ASSISTANT: The color difference between these two "
                              "images is").input_ids[1:]
    ids_t, mask = tokenize_batch([prompt, "USER: <|image|>Hi ASSISTANT:"], tok)
    assert ids_t.shape == mask.shape and int(mask[1].sum()) < ids_t.shape[1] and mask[1, 0] == 0  # left padded


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_mixed_length_batch_equals_each_sequence_alone(tiny, impl, side):
    model = _load(tiny, impl)
    seqs, images = _batch()
    ids, mask = _pad(seqs, side)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, images=torch.cat(images))
        mm = model.prepare_multimodal_inputs(ids, mask, torch.cat(images))
        assert not torch.isnan(out.logits).any()
        for i, s in enumerate(seqs):
            alone = model(s[None], images=images[i]).logits[0]
            valid = mm.attention_mask[i].bool()
            assert int(valid.sum()) == alone.shape[0]
            torch.testing.assert_close(out.logits[i][valid], alone, **TOL)
    # packing follows the input's padding side
    assert bool(mm.attention_mask[:, -1].all()) == (side == "left")


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_batched_generation_equals_each_sequence_alone(tiny, impl):
    model = _load(tiny, impl)
    seqs, images = _batch()
    kw = {"max_new_tokens": 5, "do_sample": False, "output_scores": True, "return_dict_in_generate": True,
          "eos_token_id": None}
    alone = [model.generate(s[None], images=images[i], **kw) for i, s in enumerate(seqs)]
    for side in ("left", "right"):  # right-padded prompts are re-packed for generation
        ids, mask = _pad(seqs, side)
        out = model.generate(ids, attention_mask=mask, images=torch.cat(images), **kw)
        assert torch.equal(out.sequences[:, : ids.shape[1]], ids)
        for i, s in enumerate(seqs):
            assert out.sequences[i, ids.shape[1]:].tolist() == alone[i].sequences[0, len(s):].tolist()
            torch.testing.assert_close(torch.stack(out.scores, 1)[i], torch.stack(alone[i].scores, 1)[0], **TOL)


def test_generation_without_cache_gives_the_cached_tokens(tiny):
    model = _load(tiny)
    seqs, images = _batch()
    kw = {"max_new_tokens": 4, "do_sample": False, "eos_token_id": None}
    cached = model.generate(seqs[0][None], images=images[0], use_cache=True, **kw)
    mm = model.prepare_multimodal_inputs(seqs[0][None], None, images[0])
    # reference decode without a cache: re-run the full expanded sequence each step
    embeds, mask, modality, tokens = mm.inputs_embeds, mm.attention_mask, mm.modality_indicators, []
    with torch.no_grad():
        for _ in range(4):
            logits = model(inputs_embeds=embeds, attention_mask=mask, modality_indicators=modality,
                           use_cache=False).logits
            nxt = logits[:, -1].argmax(-1)
            tokens.append(int(nxt))
            embeds = torch.cat([embeds, model.model.embed_tokens(nxt)[:, None]], 1)
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], 1)
            modality = torch.cat([modality, torch.zeros(1, 1, dtype=modality.dtype)], 1)
    assert cached[0, len(seqs[0]):].tolist() == tokens
    uncached = model.generate(seqs[0][None], images=images[0], use_cache=False, **kw)
    assert torch.equal(uncached, cached)
    # max_length counts the prompt's ids (with the -200 placeholders), as in the original
    by_length = model.generate(seqs[0][None], images=images[0], max_length=len(seqs[0]) + 4, do_sample=False,
                               eos_token_id=None)
    assert torch.equal(by_length, cached)


def test_beam_search_and_several_samples_per_prompt(tiny):
    model = _load(tiny)
    seqs, images = _batch()
    ids, mask = _pad(seqs[:2], "left")
    pixels = torch.cat(images[:2])
    kw = {"max_new_tokens": 3, "eos_token_id": None}
    beams = model.generate(ids, attention_mask=mask, images=pixels, num_beams=3, do_sample=False, **kw)
    for i, s in enumerate(seqs[:2]):
        alone = model.generate(s[None], images=images[i], num_beams=3, do_sample=False, **kw)
        assert beams[i, ids.shape[1]:].tolist() == alone[0, len(s):].tolist()
    torch.manual_seed(0)
    sampled = model.generate(ids, attention_mask=mask, images=pixels, do_sample=True, num_return_sequences=2, **kw)
    assert sampled.shape == (4, ids.shape[1] + 3)
    assert torch.equal(sampled[:, : ids.shape[1]], ids.repeat_interleave(2, dim=0))


def test_bf16_runs_and_follows_float32(tmp_path):
    folder = build_tiny_mplug_owl2(tmp_path / "plain", seed=0)  # LLaMA-scale weights, as a real checkpoint
    seqs, images = _batch()
    ref = _load(folder, "sdpa", torch.float32)
    half = _load(folder, "sdpa", torch.bfloat16)
    with torch.no_grad():
        a = ref(seqs[0][None], images=images[0]).logits
        b = half(seqs[0][None], images=images[0]).logits
    assert b.dtype == torch.bfloat16
    assert torch.corrcoef(torch.stack([a.flatten(), b.float().flatten()]))[0, 1] > 0.999


def test_training_backward_with_gradient_checkpointing(tiny):
    model = _load(tiny, "sdpa")
    model.train()
    model.gradient_checkpointing_enable()
    seqs, images = _batch()
    ids, mask = _pad(seqs, "right")
    labels = ids.masked_fill(mask == 0, -100)
    out = model(ids, attention_mask=mask, images=torch.cat(images), labels=labels, use_cache=False)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ("model.layers.0.self_attn.k_proj.multiway.1.weight", "model.layers.0.self_attn.k_proj.multiway.0"
                 ".weight", "model.visual_abstractor.query_embeds", "model.vision_model.embeddings.cls_token"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_image_count_and_placeholder_errors(tiny):
    model = _load(tiny)
    seqs, images = _batch()
    with pytest.raises(ModelError, match="images for 2 image placeholders"):
        model(seqs[0][None], images=torch.cat(images))
    with pytest.raises(ModelError, match="no images"):
        model(seqs[0][None])
    ids = seqs[0][None].clone()
    with pytest.raises(ModelError, match="padding position"):
        model(ids, attention_mask=(ids != IMAGE_TOKEN_INDEX).long(), images=images[0])


def test_text_only_sample_consumes_an_image_slot_as_the_original(tiny):
    model = _load(tiny)
    seqs, images = _batch()
    text = torch.tensor([1, 30, 31, 32, 33, 34, 35, 36])
    ids = torch.stack([seqs[0], text])
    with torch.no_grad():
        # the original layout: a dummy image for the text-only sample, ignored
        dummy = torch.cat([images[0], torch.zeros(1, 3, 56, 56)])
        a = model(ids, images=dummy).logits
        b = model(ids, images=images[0]).logits  # or no dummy at all
        alone = model(seqs[0][None], images=images[0]).logits[0]
        text_alone = model(text[None]).logits[0]
    for out in (a, b):
        torch.testing.assert_close(out[0], alone, **TOL)
        torch.testing.assert_close(out[1, : len(text)], text_alone, **TOL)


def test_lora_release_merges_into_the_base_model(tiny, tmp_path):
    from cdbench.models.mplug_owl2.lora import load_lora_model

    base = _load(tiny)
    n, r, alpha = base.config.num_hidden_layers, 4, 8
    targets = [f"model.layers.{i}.self_attn.q_proj" for i in range(n)]
    targets += [f"model.layers.{i}.self_attn.v_proj.multiway.1" for i in range(n)]
    lora = tmp_path / "q-align-lora"
    lora.mkdir()
    # adapter_config.json as peft 0.4 (the training script's) writes it
    (lora / "adapter_config.json").write_text(json.dumps({
        "auto_mapping": None, "base_model_name_or_path": "q-future/one-align", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": alpha, "lora_dropout": 0.05, "modules_to_save": None,
        "peft_type": "LORA", "r": r, "revision": None, "target_modules": targets, "task_type": "CAUSAL_LM"}))
    g = torch.Generator().manual_seed(3)
    adapter = {}
    for t in targets:
        mod = base.get_submodule(t)
        adapter[f"base_model.model.{t}.lora_A.weight"] = torch.randn(r, mod.in_features, generator=g)
        adapter[f"base_model.model.{t}.lora_B.weight"] = torch.randn(mod.out_features, r, generator=g)
    torch.save(adapter, lora / "adapter_model.bin")
    non_lora = {f"base_model.model.model.visual_abstractor.{k}": v.detach() + 0.5
                for k, v in base.model.visual_abstractor.named_parameters()}
    torch.save(non_lora, lora / "non_lora_trainables.bin")
    base.config.save_pretrained(lora)

    with pytest.raises(ModelError, match="not a local folder"):
        load_lora_model(lora)
    merged = load_lora_model(lora, tiny)
    assert isinstance(merged, MPLUGOwl2LlamaForCausalLM)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    for t in targets:
        a, b = adapter[f"base_model.model.{t}.lora_A.weight"], adapter[f"base_model.model.{t}.lora_B.weight"]
        torch.testing.assert_close(merged.get_submodule(t).weight, base.get_submodule(t).weight + alpha / r * b @ a)
    untouched = "model.layers.0.self_attn.v_proj.multiway.0.weight"
    assert torch.equal(merged.get_parameter(untouched), base.get_parameter(untouched))
    torch.testing.assert_close(merged.model.visual_abstractor.visual_fc.weight,
                               base.model.visual_abstractor.visual_fc.weight + 0.5)
    # a pickle with anything but tensors is refused (weights_only)
    torch.save({"x": torch.ones(1), "obj": argparse.Namespace(a=1)}, lora / "non_lora_trainables.bin")
    with pytest.raises(ModelError, match="weights-only"):
        load_lora_model(lora, tiny)


def test_import_cdbench_stays_light_and_registers_the_auto_classes():
    import subprocess
    import sys

    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    from cdbench.models.mplug_owl2 import MPLUGOwl2Config

    assert CONFIG_MAPPING["mplug_owl2"] is MPLUGOwl2Config
    assert MODEL_FOR_CAUSAL_LM_MAPPING[MPLUGOwl2Config] is MPLUGOwl2LlamaForCausalLM
    code = "import sys, cdbench\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_auto_model_loads_after_import_cdbench_in_a_fresh_process(tiny):
    """The registration hooks fire when transformers' Auto modules are imported after cdbench."""
    import subprocess
    import sys

    code = (
        "import cdbench\n"
        "from transformers import AutoConfig, AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tiny)!r})\n"
        f"print(type(AutoConfig.from_pretrained({str(tiny)!r})).__name__, type(m).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["MPLUGOwl2Config", "MPLUGOwl2LlamaForCausalLM"]


def test_checkpoint_without_sincos_tables_and_with_old_rotary_buffers_loads(tiny, tmp_path):
    """The original conversion script's checkpoints: no q/k_pos_embed, extra rotary inv_freq buffers."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    state = load_file(str(tiny / "model.safetensors"))
    tables = {k: state.pop(k) for k in list(state) if k.endswith(("q_pos_embed", "k_pos_embed"))}
    assert len(tables) == 2 * 2  # two abstractor layers
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    folder = tmp_path / "converted"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(tiny / "config.json", folder / "config.json")
    model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    loaded = model.state_dict()
    for k, v in tables.items():
        assert torch.equal(loaded[k], v), k  # recomputed from the config: the same fixed tables
    assert torch.equal(loaded["lm_head.weight"], state["lm_head.weight"])


def test_precomputed_image_features_give_the_same_inputs(tiny):
    model = _load(tiny)
    seqs, images = _batch()
    ids, mask = _pad(seqs, "left")
    pixels = torch.cat(images)
    with torch.no_grad():
        a = model.prepare_multimodal_inputs(ids, mask, pixels)
        b = model.prepare_multimodal_inputs(ids, mask, image_features=model.encode_images(pixels))
        logits = model(inputs_embeds=b.inputs_embeds, attention_mask=b.attention_mask, position_ids=b.position_ids,
                       modality_indicators=b.modality_indicators).logits
        direct = model(ids, attention_mask=mask, images=pixels).logits
    for field in ("attention_mask", "position_ids", "modality_indicators"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    torch.testing.assert_close(a.inputs_embeds, b.inputs_embeds)
    torch.testing.assert_close(logits, direct)
    # positions count the valid rows of each sample from 0; the image rows are consecutive
    for i in range(len(seqs)):
        valid = a.attention_mask[i].bool()
        assert a.position_ids[i][valid].tolist() == list(range(int(valid.sum())))
        assert int(a.modality_indicators[i].sum()) == model.config.image_tokens * int((seqs[i] == -200).sum())


@pytest.fixture(scope="module")
def sentencepiece_folder(tmp_path_factory):
    """A LLaMA-style sentencepiece ``tokenizer.model`` folder, as the released checkpoints ship."""
    spm = pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf", reason="transformers needs protobuf to convert tokenizer.model")
    from cdbench.models.mplug_owl2.tiny import _corpus

    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_corpus(list(LEVELS)) + ["What is shown?\nThe image shows 123 cats, 4.5% üñ ✓"]))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=400, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        minloglevel=2)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "legacy": False, "model_max_length": 2048, "pad_token": None,
        "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer"}))
    return folder


def test_sentencepiece_folder_tokenizes_as_the_original(sentencepiece_folder):
    """The original (transformers 4.36, slow LlamaTokenizer) gives [BOS] + sentencepiece ids for plain text,
    also for text that starts with a space (the chunk after the images in CD-Reasoning's prompt)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from cdbench.models.mplug_owl2.tokenization import load_tokenizer

    sp = spm.SentencePieceProcessor(model_file=str(sentencepiece_folder / "tokenizer.model"))
    tok = load_tokenizer(sentencepiece_folder)
    texts = ["USER: ", " ASSISTANT: The color difference between these two images is", "\nRate the color.",
             "  two  spaces", "What is shown?\nThe image shows 123 cats, 4.5% üñ ✓", "moderate", " severe", ""]
    for text in texts:
        assert tok(text).input_ids == [1, *sp.encode(text)], text
        assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text
    plain = AutoTokenizer.from_pretrained(sentencepiece_folder)  # transformers 5 alone drops a "▁" here
    assert plain(" ASSISTANT:").input_ids != [1, *sp.encode(" ASSISTANT:")]
    # tokenizer_image_token makes a plain tokenizer compatible itself
    prompt = build_prompt("Compare the colors.\n<|image|><|image|>", "The color difference between these two "
                          "images is")
    ids = tokenizer_image_token(prompt, plain)
    k = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[:k] == [1, *sp.encode(prompt.split("<|image|>")[0])]
    assert ids[k + 2:] == sp.encode(prompt.split("<|image|>")[2])
