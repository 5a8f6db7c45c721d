"""mPLUG-Owl2 against the golden fixture of the original implementation (float32, atol/rtol 1e-4).

``../shared/fixtures/mplug-owl2-tiny`` holds a checkpoint written by the original Q-Align /
CD-Reasoning code (transformers 4.36) and its exact outputs; ``mplug-owl2-7b-keys.json`` every key
and shape of a real 7B checkpoint. Skipped with a reason when the fixtures are absent.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from cdbench.models.mplug_owl2 import MPLUGOwl2Config, MPLUGOwl2LlamaForCausalLM  # noqa: E402

TOL = {"atol": 1e-4, "rtol": 1e-4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fixture_dir(shared_fixtures):
    folder = shared_fixtures / "mplug-owl2-tiny"
    if not folder.exists():
        pytest.skip(f"golden fixture absent: {folder}")
    return folder


@pytest.fixture(scope="module")
def golden(fixture_dir):
    return load_file(str(fixture_dir / "golden.safetensors"))


@pytest.fixture(scope="module")
def model(fixture_dir):
    from transformers import AutoModelForCausalLM

    m, info = AutoModelForCausalLM.from_pretrained(
        fixture_dir, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    m.loading_info = info
    return m.eval()


def _valid(golden):
    return golden["expanded_attention_mask"].bool()


def test_auto_classes_load_the_original_checkpoint_using_every_tensor(model, fixture_dir):
    assert isinstance(model, MPLUGOwl2LlamaForCausalLM)
    assert isinstance(model.config, MPLUGOwl2Config)
    info = model.loading_info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    stored = load_file(str(fixture_dir / "model.safetensors"))
    state = model.state_dict()
    assert set(stored) == set(state)
    for k, v in stored.items():
        assert torch.equal(state[k], v), k


def test_vision_tower_and_abstractor(model, golden):
    with torch.no_grad():
        vision = model.model.vision_model(golden["pixel_values"])
        feats = model.encode_images(golden["pixel_values"])
    torch.testing.assert_close(vision, golden["vision_last_hidden_state"], **TOL)
    torch.testing.assert_close(feats, golden["image_features"], **TOL)


def test_image_insertion_global_image_order(model, golden):
    with torch.no_grad():
        mm = model.prepare_multimodal_inputs(golden["input_ids"], golden["attention_mask"], golden["pixel_values"],
                                             golden["labels"])
    assert torch.equal(mm.attention_mask, golden["expanded_attention_mask"])
    assert torch.equal(mm.modality_indicators, golden["modality_indicators"])
    assert torch.equal(mm.labels, golden["expanded_labels"])
    v = _valid(golden)
    torch.testing.assert_close(mm.inputs_embeds[v], golden["inputs_embeds"][v], **TOL)
    # the original's own entry point gives the same
    with torch.no_grad():
        _, mod, mask, _, embeds, labels = model.prepare_inputs_labels_for_multimodal(
            golden["input_ids"], golden["attention_mask"], None, golden["labels"], golden["pixel_values"])
    assert torch.equal(mod, golden["modality_indicators"]) and torch.equal(mask, golden["expanded_attention_mask"])
    torch.testing.assert_close(embeds[v], golden["inputs_embeds"][v], **TOL)


def test_forward_logits_and_hidden_states(model, golden):
    with torch.no_grad():
        out = model(input_ids=golden["input_ids"], attention_mask=golden["attention_mask"],
                    images=golden["pixel_values"], output_hidden_states=True)
    v = _valid(golden)
    assert out.logits.shape == golden["logits"].shape
    torch.testing.assert_close(out.logits[v], golden["logits"][v], **TOL)
    assert len(out.hidden_states) == golden["hidden_states"].shape[0]
    for mine, ref in zip(out.hidden_states, golden["hidden_states"]):
        torch.testing.assert_close(mine[v], ref[v], **TOL)


def test_loss_with_expanded_labels(model, golden):
    with torch.no_grad():
        out = model(input_ids=golden["input_ids"], attention_mask=golden["attention_mask"],
                    images=golden["pixel_values"], labels=golden["labels"])
    torch.testing.assert_close(out.loss.reshape(1), golden["loss"], **TOL)


def test_list_of_frames_path(model, golden):
    with torch.no_grad():
        out = model(golden["video_input_ids"], images=[golden["video_pixel_values_0"], golden["video_pixel_values_1"]])
    lengths = golden["video_valid_lengths"].tolist()
    assert out.logits.shape == golden["video_logits"].shape
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out.logits[b, :n], golden["video_logits"][b, :n], **TOL)
    mm = model.prepare_multimodal_inputs(golden["video_input_ids"], None,
                                         [golden["video_pixel_values_0"], golden["video_pixel_values_1"]])
    assert torch.equal(mm.modality_indicators, golden["video_modality_indicators"])


@pytest.mark.parametrize("seq", [0, 1])
def test_greedy_generation_with_kv_cache(model, golden, seq):
    a, b = [(0, 2), (2, 4)][seq]
    prompt = golden[f"gen_prompt_ids_{seq}"]
    with torch.no_grad():
        out = model.generate(prompt, images=golden["pixel_values"][a:b], max_new_tokens=8, do_sample=False,
                             num_beams=1, use_cache=True, output_scores=True, return_dict_in_generate=True)
    assert torch.equal(out.sequences[0, : prompt.shape[1]], prompt[0])  # the original returns prompt + new tokens
    assert out.sequences[0, prompt.shape[1]:].tolist() == golden["generated_ids"][seq].tolist()
    torch.testing.assert_close(torch.stack(out.scores, 1)[0], golden["generated_step_logits"][seq], **TOL)


def test_manual_decoding_loop_as_the_original(model, golden):
    """A hand-written loop (prefill with images, then one token at a time with past_key_values)."""
    prompt, images = golden["gen_prompt_ids_0"], golden["pixel_values"][0:2]
    with torch.no_grad():
        out = model(prompt, attention_mask=torch.ones_like(prompt), images=images, use_cache=True)
        tokens, past = [], out.cache
        for step in range(3):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(nxt))
            torch.testing.assert_close(out.logits[0, -1], golden["generated_step_logits"][0, step], **TOL)
            mask = torch.ones(1, prompt.shape[1] + step + 1, dtype=torch.long)  # unexpanded length, as users pass
            out = model(nxt, attention_mask=mask, images=images, past_key_values=past, use_cache=True)
            past = out.cache
    assert tokens == golden["generated_ids"][0, :3].tolist()


@pytest.mark.parametrize("impl", ["sdpa"])
def test_sdpa_gives_the_eager_logits(fixture_dir, golden, impl):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(fixture_dir, attn_implementation=impl, dtype=torch.float32).eval()
    with torch.no_grad():
        out = m(input_ids=golden["input_ids"], attention_mask=golden["attention_mask"], images=golden["pixel_values"])
    v = _valid(golden)
    torch.testing.assert_close(out.logits[v], golden["logits"][v], **TOL)


def test_every_key_of_a_real_7b_checkpoint_loads_on_meta(shared_fixtures):
    keys_file = shared_fixtures / "mplug-owl2-7b-keys.json"
    if not keys_file.exists():
        pytest.skip(f"absent: {keys_file}")
    spec = json.loads(keys_file.read_text())
    config = MPLUGOwl2Config(**{k: v for k, v in spec["config_json"].items() if k not in ("architectures",)})
    with torch.device("meta"):
        model = MPLUGOwl2LlamaForCausalLM(config)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {e["key"]: tuple(e["shape"]) for e in spec["keys"]}
    assert len(expected) == spec["n_keys"]
    assert sorted(set(expected) - set(state)) == []  # nothing the checkpoint has is left unloaded
    assert sorted(set(state) - set(expected)) == []  # nothing the model needs is missing
    assert {k: state[k] for k in expected} == expected
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == spec["n_parameters"]


def test_pixel_values_from_raw_images_with_the_preprocessor_config(fixture_dir, golden):
    from cdbench.models.mplug_owl2 import MPLUGOwl2ImageProcessor

    raw = [x.numpy() for x in golden["raw_images"]]
    plain = MPLUGOwl2ImageProcessor.from_pretrained(fixture_dir)  # config.json has no image_aspect_ratio
    torch.testing.assert_close(plain(raw), golden["pixel_values"], atol=1e-5, rtol=0)
    padded = MPLUGOwl2ImageProcessor.from_pretrained(fixture_dir, image_aspect_ratio="pad")  # Q-Align's scorer
    torch.testing.assert_close(padded(raw), golden["pixel_values_expand2square"], atol=1e-5, rtol=0)
    from PIL import Image

    one = plain(Image.fromarray(raw[0]))  # a single PIL image
    torch.testing.assert_close(one, golden["pixel_values"][:1], atol=1e-5, rtol=0)
    torch.testing.assert_close(plain(golden["raw_images"]), golden["pixel_values"], atol=1e-5, rtol=0)  # (N,H,W,3)


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["eager", "sdpa", "flash_attention_2"])
def test_cuda_matches_the_golden_logits(fixture_dir, golden, impl):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from transformers import AutoModelForCausalLM
    from transformers.utils import is_flash_attn_2_available

    if impl == "flash_attention_2" and not is_flash_attn_2_available():
        pytest.skip("flash-attn is not installed")
    dtype = torch.bfloat16 if impl == "flash_attention_2" else torch.float32  # flash kernels need 16-bit
    torch.backends.cuda.matmul.allow_tf32 = False
    m = AutoModelForCausalLM.from_pretrained(fixture_dir, attn_implementation=impl, dtype=dtype).cuda().eval()
    with torch.no_grad():
        out = m(input_ids=golden["input_ids"].cuda(), attention_mask=golden["attention_mask"].cuda(),
                images=golden["pixel_values"].cuda().to(dtype))
    v = _valid(golden)
    mine, ref = out.logits.float().cpu()[v], golden["logits"][v]
    if dtype == torch.float32:
        torch.testing.assert_close(mine, ref, **TOL)
    else:
        assert torch.corrcoef(torch.stack([mine.flatten(), ref.flatten()]))[0, 1] > 0.995
        assert (mine.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9
