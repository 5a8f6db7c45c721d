"""Fine-tuning (issue 8): recipe settings, training items, supervised labels, the loss against the
original, what LoRA trains, exports that reload to the same logits, and a short run that learns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from cdbench.errors import DataError  # noqa: E402
from cdbench.finetune.config import FinetuneConfig  # noqa: E402
from cdbench.finetune.data import IGNORE_INDEX, TrainItem, count_supervised, load_training_items  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def dataset(synthetic_mspcd_with_train) -> Path:
    return synthetic_mspcd_with_train


@pytest.fixture(scope="module")
def mplug(workdir) -> Path:
    from cdbench.models.mplug_owl2.tiny import build_tiny_mplug_owl2

    return build_tiny_mplug_owl2(workdir / "mplug", seed=3, image_size=28, hidden_size=32, num_queries=4,
                                 weight_scale=2.0)


@pytest.fixture(scope="module")
def llava(workdir) -> Path:
    from cdbench.models.mllm.tiny import build_tiny_llava

    return build_tiny_llava(workdir / "llava", seed=2, hidden_size=32)


def _config(model, dataset, out, **kw) -> FinetuneConfig:
    base = dict(model=str(model), dataset=str(dataset), out=str(out), precision="fp32", per_device_batch_size=4,
                dataloader_num_workers=0, progress=False, gradient_checkpointing=False, lora_dropout=0.0)
    return FinetuneConfig(**{**base, **kw})


# ----------------------------------------------------------------------------------------------- settings
def test_defaults_are_the_cd_reasoning_recipe():
    c = FinetuneConfig()
    assert (c.method, c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_bias) == ("lora", 128, 256, 0.05, "none")
    assert (c.learning_rate, c.lr_scheduler, c.warmup_ratio, c.weight_decay) == (2e-4, "cosine", 0.03, 0.0)
    assert (c.precision, c.gradient_checkpointing, c.tune_visual_abstractor, c.vision_frozen) == ("bf16", True,
                                                                                                   True, True)
    assert (c.per_device_batch_size, c.num_train_epochs, c.model_max_length) == (32, 1.0, 2048)
    assert c.aspect_mode("mplug_owl2") == "pad" and c.aspect_mode("hf_vlm") == "none"
    assert c.lora_scaling == 2.0 and c.warmup_steps(1000) == 30 and c.warmup_steps(10) == 1  # ceil, as HF Trainer
    assert FinetuneConfig(method="full").vision_frozen is False
    assert FinetuneConfig(method="full", freeze_vision_model=True).vision_frozen is True


def test_yaml_config_and_bad_settings(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lora_r: 16\nlora_alpha: 32\ntasks: [scores]\nlearning_rate: 1.0e-4\n")
    c = FinetuneConfig.from_yaml(path, learning_rate=3e-4, lora_r=None)
    assert (c.lora_r, c.lora_alpha, c.tasks, c.learning_rate) == (16, 32, ("scores",), 3e-4)
    path.write_text("lora_rank: 16\n")
    with pytest.raises(DataError, match="lora_rank"):
        FinetuneConfig.from_yaml(path)
    path.write_text("lora_r: [1\n")
    with pytest.raises(DataError, match="not valid YAML"):
        FinetuneConfig.from_yaml(path)
    with pytest.raises(DataError, match="method"):
        FinetuneConfig(method="qlora")
    with pytest.raises(DataError, match="lora_dropout"):
        FinetuneConfig(lora_dropout=1.5)


# ----------------------------------------------------------------------------------------------- items
def test_training_items_mix_scores_and_descriptions(dataset):
    from cdbench.data.dataset import open_split
    from cdbench.models.mllm.settings import SCORE_ANSWER_PREFIX

    items, _ = load_training_items(dataset)
    scores, descr = open_split(dataset, "scores", "train"), open_split(dataset, "descriptions", "train")
    assert len(items) == len(scores) + len(descr) and len(descr) > 0
    by_task = {t: [i for i in items if i.task == t] for t in ("scores", "descriptions")}
    names = scores.features["level"].names
    for item in by_task["scores"]:
        row = scores[item.row]
        level = row["released_level"] if row["released_level"] is not None else row["level"]
        assert item.answer == f"{SCORE_ANSWER_PREFIX} {names[level]}."
        assert item.prompt == row["question"] and item.pair_id == row["pair_id"]
    for item in by_task["descriptions"]:
        assert item.answer == descr[item.row]["reference"] and item.prompt == descr[item.row]["instruction"]
    only, _ = load_training_items(dataset, tasks=("scores",))
    assert {i.task for i in only} == {"scores"}
    with pytest.raises(DataError, match="no split"):
        load_training_items(dataset, split="validation")


def test_mplug_owl2_labels_supervise_only_the_answer(mplug):
    from cdbench.finetune.encoders import MplugOwl2Encoder
    from cdbench.models.mplug_owl2 import IMAGE_TOKEN_INDEX

    enc = MplugOwl2Encoder.from_folder(mplug)
    item = TrainItem("scores", "a+b", "How would you describe the color difference in these two images?",
                     "The color difference between these two images is moderate.", 0)
    assert enc.conversation(item) == ("USER: <|image|><|image|>\nHow would you describe the color difference in "
                                      "these two images? ASSISTANT: The color difference between these two images "
                                      "is moderate.</s>")
    rng = np.random.default_rng(0)
    ex = enc(item, (rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
                    rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)))
    ids, labels = ex["input_ids"], ex["labels"]
    assert int((ids == IMAGE_TOKEN_INDEX).sum()) == 2 and ex["images"].shape == (2, 3, 28, 28)
    sup = labels != IGNORE_INDEX
    first = int(sup.nonzero()[0, 0])
    assert sup[first:].all() and not sup[:first].any()  # one supervised span at the end
    assert torch.equal(labels[sup], ids[sup])
    assert enc.tokenizer.decode(ids[sup]) == "The color difference between these two images is moderate.</s>"
    batch = enc.collate([ex, enc(item, (np.zeros((8, 8, 3), np.uint8),) * 2)])
    assert batch["images"].shape[0] == 4 and batch["attention_mask"].sum() == 2 * ids.shape[0]
    after = MplugOwl2Encoder.from_folder(mplug, image_position="after")  # CD-Reasoning's evaluation layout
    assert after.conversation(item).startswith("USER: How would you describe the color difference in these two "
                                               "images?\n<|image|><|image|> ASSISTANT: ")
    ids2, labels2 = after.tokenize(after.conversation(item))
    assert after.tokenizer.decode(ids2[labels2 != IGNORE_INDEX]) == enc.tokenizer.decode(ids[sup])


def test_chat_template_labels_supervise_only_the_answer(llava):
    from transformers import AutoProcessor

    from cdbench.finetune.encoders import ChatTemplateEncoder

    proc = AutoProcessor.from_pretrained(llava)
    enc = ChatTemplateEncoder(proc, image_aspect_ratio="pad")
    item = TrainItem("scores", "a+b", "How different?", "The color difference between these two images is slight.", 0)
    ex = enc(item, (np.full((20, 30, 3), 90, np.uint8), np.full((28, 28, 3), 200, np.uint8)))
    ids, labels = ex["input_ids"], ex["labels"]
    sup = labels != IGNORE_INDEX
    text = proc.tokenizer.decode(ids[sup])
    assert text.strip() == "The color difference between these two images is slight.</s>"
    assert not sup[ids == proc.tokenizer.convert_tokens_to_ids("<image>")].any()
    assert ex["pixel_values"].shape[0] == 2
    batch = enc.collate([ex, ex])
    assert batch["pixel_values"].shape[0] == 4 and batch["labels"].shape == batch["input_ids"].shape


# ----------------------------------------------------------------------------------------------- the loss
def test_loss_equals_the_original_on_the_golden_fixture(shared_fixtures):
    """The training loss path on the fixture's inputs gives the loss the original code computed."""
    from safetensors.torch import load_file

    from cdbench.finetune.model_setup import load_base_model
    from cdbench.finetune.trainer import supervised_loss_sum

    folder = shared_fixtures / "mplug-owl2-tiny"
    golden = folder / "golden.safetensors"
    if not golden.is_file():
        pytest.skip(f"{golden} is absent")
    g = load_file(str(golden))
    model = load_base_model(folder, "mplug_owl2", dtype="fp32", attn_implementation="eager").eval()
    batch = {"input_ids": g["input_ids"], "attention_mask": g["attention_mask"], "images": g["pixel_values"],
             "labels": g["labels"]}
    with torch.no_grad():
        total, n = supervised_loss_sum(model, batch)
    assert n == int((g["expanded_labels"][:, 1:] != IGNORE_INDEX).sum())  # image rows and padding not counted
    assert abs(float(total) / n - float(g["loss"][0])) < 1e-5
    # the sum is what the multi-process loop normalises: recompute it from the logits and expanded labels
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                           g["expanded_labels"][:, 1:].reshape(-1), reduction="sum")
    assert abs(float(ce) - float(total)) < 1e-3


def test_count_supervised_ignores_placeholders_and_the_first_column():
    labels = torch.tensor([[5, -100, -200, 7, 8], [9, 1, -100, -100, -100]])
    assert count_supervised(labels) == 3


# ----------------------------------------------------------------------------------------------- what is trained
def test_lora_adapts_q_proj_and_the_visual_v_proj_and_trains_the_abstractor(mplug):
    from cdbench.finetune.model_setup import load_base_model, prepare_for_training

    model = load_base_model(mplug, "mplug_owl2")
    n_layers = model.config.num_hidden_layers
    peft_model, summary = prepare_for_training(model, FinetuneConfig(lora_r=4, lora_alpha=8, precision="fp32"),
                                               "mplug_owl2")
    assert summary["lora_targets"] == sorted(
        [f"model.layers.{i}.self_attn.q_proj" for i in range(n_layers)]
        + [f"model.layers.{i}.self_attn.v_proj.multiway.1" for i in range(n_layers)])
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or ".visual_abstractor." in n for n in trainable)
    assert any(".visual_abstractor." in n for n in trainable)
    assert not any("vision_model" in n for n in trainable)
    assert not any("v_proj.multiway.0.lora" in n or "k_proj" in n and "lora" in n for n in trainable)
    full, s_full = prepare_for_training(load_base_model(mplug, "mplug_owl2"),
                                        FinetuneConfig(method="full", freeze_vision_model=True), "mplug_owl2")
    frozen = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("model.vision_model.") for n in frozen)
    assert s_full["trainable_parameters"] + sum(p.numel() for n, p in full.named_parameters()
                                                if n in frozen) == s_full["total_parameters"]


def test_hf_vlm_lora_targets_the_language_model_and_trains_the_projector(llava):
    from cdbench.finetune.model_setup import load_base_model, model_family, prepare_for_training

    assert model_family(llava) == "hf_vlm"
    model, summary = prepare_for_training(load_base_model(llava, "hf_vlm"),
                                          FinetuneConfig(lora_r=4, lora_alpha=8, precision="fp32"), "hf_vlm")
    assert summary["lora_targets"] and all(t.endswith((".q_proj", ".v_proj")) and "language_model" in t
                                           for t in summary["lora_targets"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)


# ----------------------------------------------------------------------------------------------- exports
def _batch(encoder, dataset, n=3):
    from cdbench.finetune.data import TrainingSet

    items, splits = load_training_items(dataset)
    ts = TrainingSet(items, splits, encoder, dataset)
    return encoder.collate([ts[i] for i in range(n)])


def test_exported_adapter_merged_and_reloaded_gives_the_in_memory_logits(mplug, dataset, tmp_path):
    """Merged folder (AutoModel), and the release folder read the way the original builder.py reads it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from cdbench.finetune.encoders import MplugOwl2Encoder
    from cdbench.finetune.export import export_lora_release, export_merged
    from cdbench.finetune.model_setup import load_base_model, prepare_for_training

    torch.manual_seed(0)
    config = _config(mplug, dataset, tmp_path, lora_r=4, lora_alpha=8)
    model, _ = prepare_for_training(load_base_model(mplug, "mplug_owl2"), config, "mplug_owl2")
    with torch.no_grad():  # a trained-looking state: LoRA B non-zero, abstractor moved
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * (0.3 if "lora_B" in name else 0.02))
    batch = _batch(MplugOwl2Encoder.from_folder(mplug), dataset)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    record = {"global_step": 0}
    lora_dir = export_lora_release(model, mplug, tmp_path / "lora", config, record)
    merged_dir = export_merged(model, mplug, tmp_path / "merged", record, is_lora=True)

    reloaded = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, expected, atol=2e-5, rtol=1e-5)

    # the original tooling's order: base (config of the LoRA folder) -> non_lora_trainables -> PeftModel -> merge
    assert (lora_dir / "adapter_model.bin").is_file() and (lora_dir / "non_lora_trainables.bin").is_file()
    cfg = json.loads((lora_dir / "adapter_config.json").read_text())
    assert (cfg["peft_type"], cfg["task_type"], cfg["r"], cfg["lora_alpha"]) == ("LORA", "CAUSAL_LM", 4, 8)
    adapter = torch.load(lora_dir / "adapter_model.bin", weights_only=True)
    assert all(k.startswith("base_model.model.model.layers.") and ".lora_" in k and ".default." not in k
               for k in adapter)
    non_lora = torch.load(lora_dir / "non_lora_trainables.bin", weights_only=True)
    assert non_lora and all(k.startswith("base_model.model.model.visual_abstractor.") for k in non_lora)
    base = AutoModelForCausalLM.from_pretrained(mplug, dtype=torch.float32)
    non_lora = {k[len("base_model."):]: v for k, v in non_lora.items()}
    non_lora = {(k[len("model."):] if k.startswith("model.model.") else k): v for k, v in non_lora.items()}
    missing = set(non_lora) - set(base.state_dict())
    assert not missing
    base.load_state_dict(non_lora, strict=False)
    original_way = PeftModel.from_pretrained(base, lora_dir).merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(original_way(**inputs).logits, expected, atol=2e-5, rtol=1e-5)
    # and cdbench's own loader of release folders (base from adapter_config.json)
    from cdbench.models.mplug_owl2.lora import load_lora_model

    ours = load_lora_model(lora_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits, expected, atol=2e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- training
def _mean_loss(folder, family, batch) -> float:
    from cdbench.finetune.model_setup import load_base_model
    from cdbench.finetune.trainer import supervised_loss_sum

    model = load_base_model(folder, family).eval()
    with torch.no_grad():
        total, n = supervised_loss_sum(model, batch)
    return float(total) / n


def test_thirty_lora_steps_lower_the_loss(mplug, dataset, workdir):
    """30 LoRA steps (recipe modules, abstractor trained, cosine schedule with warm-up) on
    the synthetic training pairs lower the training loss; the run logs every step and exports."""
    from cdbench.finetune import run_finetune
    from cdbench.finetune.encoders import MplugOwl2Encoder

    out = workdir / "run30"
    config = _config(mplug, dataset, out, lora_r=8, lora_alpha=16, lora_dropout=0.05, max_steps=30,
                     per_device_batch_size=2, learning_rate=2e-3, save_steps=100, export=("merged",))
    result = run_finetune(config)
    assert result.global_step == 30 and result.total_steps == 30
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31))
    lrs = [r["lr"] for r in log]  # the rate each step used: ceil(3% of 30) = 1 warm-up step from 0, then cosine
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(2e-3) and all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[-1] == pytest.approx(2e-3 * 0.5 * (1 + np.cos(np.pi * 28 / 29)))
    assert all(r["samples"] == 2 for r in log)
    batch = _batch(MplugOwl2Encoder.from_folder(mplug), dataset, n=8)
    before, after = _mean_loss(mplug, "mplug_owl2", batch), _mean_loss(out / "merged", "mplug_owl2", batch)
    assert after < 0.9 * before, (before, after)
    assert json.loads((out / "merged" / "config.json").read_text())["image_aspect_ratio"] == "pad"  # scorer pads too
    record = json.loads((out / "merged" / "finetune.json").read_text())
    assert record["global_step"] == 30 and "torch" in record["versions"]


def _torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return is_torchvision_available()


_NEEDS_TORCHVISION = pytest.mark.skipif(not _torchvision_available(),
                                        reason="Qwen2-VL's AutoProcessor builds a video processor: needs torchvision")


@pytest.mark.parametrize("family", ["llava", "gemma3", "idefics3", pytest.param("qwen2_vl", marks=_NEEDS_TORCHVISION)])
def test_hf_vlm_run_exports_a_folder_create_model_loads(family, dataset, workdir):
    """HF image-text-to-text architectures (tiny random LLaVA-1.5, Gemma 3, Idefics3, Qwen2-VL, built offline)."""
    import cdbench
    from cdbench.finetune import run_finetune
    from cdbench.models.mllm import tiny

    base = getattr(tiny, f"build_tiny_{family}")(workdir / f"{family}-base", seed=2)
    out = workdir / f"{family}-run"
    result = run_finetune(_config(base, dataset, out, lora_r=4, lora_alpha=8, max_steps=2, learning_rate=1e-3,
                                  gradient_checkpointing=True))
    assert set(result.exports) == {"merged", "lora"} and result.summary["projector"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(r["loss"]) and r["tokens"] > 0 for r in log)
    model = cdbench.create_model(out / "merged")
    pair = (np.full((28, 28, 3), 30, np.uint8), np.full((28, 28, 3), 220, np.uint8))
    value = model.score([pair])
    assert value.shape == (1,) and 0.0 <= value[0] <= 5.0


def test_qwen2_vl_trains_on_its_image_processor(dataset, workdir, monkeypatch):
    """Qwen2-VL (flattened patch rows + grid sizes, 3-D positions): items, collation, LoRA, export. Here the
    processor is its image half (:func:`qwen2_vl_image_processor`), as torchvision may be missing."""
    import transformers

    import cdbench
    from cdbench.finetune import run_finetune
    from cdbench.models.mllm.hf_vlm import qwen2_vl_image_processor
    from cdbench.models.mllm.tiny import build_tiny_qwen2_vl

    base = build_tiny_qwen2_vl(workdir / "qwen2-vl-base", seed=2, hidden_size=32)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained",
                        classmethod(lambda cls, folder, **kw: qwen2_vl_image_processor(folder)))
    out = workdir / "qwen2-vl-run"
    result = run_finetune(_config(base, dataset, out, lora_r=4, lora_alpha=8, max_steps=3, learning_rate=1e-3))
    assert result.summary["projector"]  # visual.merger, nested in the vision module, trained in full
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(np.isfinite(r["loss"]) and r["tokens"] > 0 for r in log)
    for name in ("preprocessor_config.json", "chat_template.jinja", "tokenizer.json"):
        shutil.copy(base / name, out / "merged" / name)  # processor files (AutoProcessor writes them with torchvision)
    model = cdbench.create_model(out / "merged", processor=qwen2_vl_image_processor(out / "merged"))
    pair = (np.full((28, 56, 3), 30, np.uint8), np.full((56, 28, 3), 220, np.uint8))
    assert 0.0 <= model.score([pair])[0] <= 5.0


def test_shipped_accelerate_configs_are_valid():
    import yaml

    import cdbench.finetune

    folder = Path(cdbench.finetune.__file__).parent / "accelerate_configs"
    kinds = {}
    for path in sorted(folder.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        kinds[path.stem] = cfg["distributed_type"]
        assert cfg["mixed_precision"] == "bf16" and cfg["num_processes"] >= 1, path
        if cfg["distributed_type"] == "DEEPSPEED":
            assert cfg["deepspeed_config"]["zero_stage"] in (2, 3)
            assert cfg["deepspeed_config"]["gradient_clipping"] == FinetuneConfig().max_grad_norm
    assert set(kinds.values()) >= {"NO", "MULTI_GPU", "DEEPSPEED", "FSDP"}


def test_length_grouping_keeps_each_step_and_reduces_padding():
    from cdbench.finetune.trainer import EpochShuffleSampler

    rng = np.random.default_rng(0)
    lengths = rng.choice([12, 15, 90, 110], size=64).tolist()  # scores items short, descriptions long
    b, world, accum = 4, 2, 2
    step = b * world * accum
    plain = list(EpochShuffleSampler(64, seed=1))
    grouped = list(EpochShuffleSampler(64, seed=1, lengths=lengths, batch_size=b, world=world, accumulation=accum))
    assert sorted(grouped) == list(range(64))
    for s in range(0, 64, step):  # the same items in every optimizer step
        assert sorted(grouped[s:s + step]) == sorted(plain[s:s + step])

    def padded(order):  # tokens of the padded micro-batches (batch j goes to process j % world)
        return sum(b * max(lengths[i] for i in order[j:j + b]) for j in range(0, 64, b))

    assert padded(grouped) < 0.9 * padded(plain)
    sampler = EpochShuffleSampler(64, seed=1, lengths=lengths, batch_size=b, world=world, accumulation=accum)
    sampler.set_epoch(1)
    assert list(sampler) != grouped  # a new order every epoch


def test_missing_images_are_reported_before_training(mplug, dataset, workdir):
    from cdbench.finetune import run_finetune

    broken = workdir / "ds-broken"
    shutil.copytree(dataset, broken)
    from cdbench.data.dataset import image_path, open_split

    victim = image_path(broken, open_split(broken, "scores", "train")[0]["image2_file"])
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        run_finetune(_config(mplug, broken, workdir / "never", max_steps=1))
    assert not (workdir / "never" / "checkpoints").exists()


@pytest.mark.parametrize("method", ["full", "lora"])
def test_bf16_runs_and_full_fine_tuning_with_the_vision_tower_frozen(method, mplug, dataset, workdir):
    """bf16 autocast (the recipe's precision; LoRA keeps the frozen base in bf16, trained weights in
    float32); ``full`` trains every parameter but the frozen vision encoder."""
    from safetensors.torch import load_file

    from cdbench.finetune import run_finetune

    out = workdir / f"bf16-{method}"
    run_finetune(_config(mplug, dataset, out, method=method, freeze_vision_model=True, precision="bf16",
                         lora_r=4, lora_alpha=8, max_steps=2, learning_rate=1e-3))
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)
    base, tuned = load_file(str(mplug / "model.safetensors")), load_file(str(out / "merged" / "model.safetensors"))
    assert {str(v.dtype) for v in tuned.values()} == {"torch.float32"}  # the base checkpoint's dtype

    def changed(prefix):
        return any(not torch.equal(base[k], tuned[k]) for k in base if k.startswith(prefix))

    assert not changed("model.vision_model.") and changed("model.visual_abstractor.")
    assert changed("model.layers.0.self_attn.q_proj.")
    assert changed("model.layers.0.mlp.") == (method == "full")  # LoRA leaves the MLP alone
    if method == "lora":  # cdbench.create_model scores the same with the merged folder and adapter + base
        import cdbench

        pair = (np.full((30, 40, 3), 40, np.uint8), np.full((28, 28, 3), 200, np.uint8))
        merged = cdbench.create_model(out / "merged").score([pair])
        adapter = cdbench.create_model(out / "lora").score([pair])
        np.testing.assert_allclose(adapter, merged, atol=1e-5)


@pytest.mark.gpu
def test_recipe_run_on_cuda(mplug, dataset, workdir):
    """The recipe as it runs on a GPU: bf16 autocast over a bf16 base, gradient checkpointing, SDPA."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from cdbench.finetune import run_finetune

    out = workdir / "cuda-run"
    result = run_finetune(_config(mplug, dataset, out, precision="bf16", gradient_checkpointing=True, max_steps=4,
                                  lora_r=8, lora_alpha=16, learning_rate=1e-3))
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert result.global_step == 4 and all(np.isfinite(r["loss"]) for r in log)
    assert (out / "merged" / "model.safetensors").is_file() and (out / "lora" / "adapter_model.bin").is_file()
