"""Fine-tuning runs that must reach the same weights as a reference run: resumed after a stop at a
mid-run checkpoint, and split over two CPU processes (gloo) with the same global batch, launched by
``torchrun`` and by ``accelerate launch`` with the shipped DDP and FSDP2 config files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from launchers import ACCELERATE_CONFIGS, launcher_command  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from cdbench.errors import DataError  # noqa: E402
from cdbench.finetune.config import FinetuneConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune-dist")


@pytest.fixture(scope="module")
def dataset(synthetic_mspcd_with_train) -> Path:
    return synthetic_mspcd_with_train


@pytest.fixture(scope="module")
def mplug(workdir) -> Path:
    from cdbench.models.mplug_owl2.tiny import build_tiny_mplug_owl2

    return build_tiny_mplug_owl2(workdir / "mplug", seed=4, image_size=28, hidden_size=32, num_queries=4)


def _checkpoint_weights(out: Path, step: int) -> dict:
    return load_file(str(out / "checkpoints" / f"step-{step:08d}" / "model.safetensors"))


def test_resume_from_a_mid_run_checkpoint_reaches_the_uninterrupted_weights(mplug, dataset, workdir):
    from cdbench.finetune import run_finetune

    common = dict(model=str(mplug), dataset=str(dataset), precision="fp32", per_device_batch_size=4,
                  dataloader_num_workers=0, progress=False, gradient_checkpointing=False, lora_r=4, lora_alpha=8,
                  lora_dropout=0.1, learning_rate=1e-3, max_steps=5, save_steps=2, save_total_limit=None,
                  export=())
    full = workdir / "uninterrupted"
    run_finetune(FinetuneConfig(out=str(full), **common))
    # "kill" after the step-2 checkpoint: keep only what existed then (the log and a torn line included)
    stopped = workdir / "stopped"
    shutil.copytree(full, stopped)
    for d in (stopped / "checkpoints").iterdir():
        if d.name != "step-00000002":
            shutil.rmtree(d)
    log = (stopped / "train_log.jsonl").read_text().splitlines()
    (stopped / "train_log.jsonl").write_text("\n".join(log[:3]) + "\n" + log[3][:10])
    result = run_finetune(FinetuneConfig(out=str(stopped), **common))
    assert result.global_step == 5
    a, b = _checkpoint_weights(full, 5), _checkpoint_weights(stopped, 5)
    assert set(a) == set(b) and all("lora_" in k or "visual_abstractor" in k for k in a)  # trained params only
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)
    steps = [json.loads(x)["step"] for x in (stopped / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    # a rerun of a finished run trains nothing more
    again = run_finetune(FinetuneConfig(out=str(stopped), **common))
    assert again.global_step == 5
    # another model's run in the same folder is refused, naming what differs
    with pytest.raises(DataError, match="lora_r"):
        run_finetune(FinetuneConfig(out=str(stopped), **{**common, "lora_r": 8}))
    # a different global micro-batch cannot resume the run
    with pytest.raises(DataError, match="resume with the same"):
        run_finetune(FinetuneConfig(out=str(stopped), **{**common, "per_device_batch_size": 2}))


_COMMON = ["--precision", "fp32", "--max-steps", "3", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0",
           "--lr", "1e-3", "--workers", "0", "--no-progress", "--no-gradient-checkpointing", "--export", "merged"]
"""The settings of every run compared here: float32, three steps, no dropout (so the runs are deterministic)."""


def _launch(launcher: str, *args: str, nproc: int, out: Path, config_file: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``cdbench finetune`` in ``nproc`` CPU processes (gloo) under ``torchrun`` or ``accelerate launch``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*launcher_command(launcher, nproc, config_file), "-m", "cdbench", "finetune", *args, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _one_process(mplug: Path, dataset: Path, out: Path, method: str) -> Path:
    """The reference: one process, 4 items per step."""
    from cdbench.cli import main  # runs in this process (same code path, no launcher)

    assert main(["finetune", f"--{method}", "--model", str(mplug), "--dataset", str(dataset), *_COMMON,
                 "--batch-size", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def one_process_lora(mplug, dataset, workdir) -> Path:
    return _one_process(mplug, dataset, workdir / "one-lora", "lora")


@pytest.fixture(scope="module")
def one_process_full(mplug, dataset, workdir) -> Path:
    return _one_process(mplug, dataset, workdir / "one-full", "full")


def _assert_same_training(one: Path, two: Path, base: Path, atol: float) -> None:
    """``two`` (2 processes x 2 items) logged and learned what ``one`` (1 process x 4 items) did."""
    log1 = [json.loads(x) for x in (one / "train_log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (two / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log2] == [1, 2, 3]  # one writer
    assert [r["samples"] for r in log2] == [4, 4, 4] and [r["tokens"] for r in log2] == [r["tokens"] for r in log1]
    for x, y in zip(log1, log2):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5, abs=1e-6)
    a, b = load_file(str(one / "merged" / "model.safetensors")), load_file(str(two / "merged" / "model.safetensors"))
    start = load_file(str(base / "model.safetensors"))
    assert set(a) == set(b) == set(start)
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert moved > 1e-3  # training changed the weights ...
    for k in a:  # ... and both runs changed them the same way (float32 reduction order aside)
        torch.testing.assert_close(b[k], a[k], atol=atol, rtol=0)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(launcher, mplug, dataset, workdir,
                                                                        one_process_lora):
    """2 processes (gloo) with 2 items each == 1 process with 4 items, under ``torchrun --nproc-per-node 2``
    and under ``accelerate launch`` with the shipped DDP file (``multi_gpu_ddp.yaml --num_processes 2``:
    accelerate's multi-GPU launcher is torchrun, and cdbench's processes fall back to gloo without CUDA;
    ``accelerate launch --cpu`` would start one process)."""
    two = workdir / f"two-{launcher}"
    r2 = _launch(launcher, "--model", str(mplug), "--dataset", str(dataset), *_COMMON, "--batch-size", "2",
                 nproc=2, out=two, config_file=ACCELERATE_CONFIGS / "multi_gpu_ddp.yaml")
    assert r2.returncode == 0, r2.stderr[-3000:]
    _assert_same_training(one_process_lora, two, mplug, atol=1e-4)


def _assert_export_scores_like(two: Path, one: Path) -> None:
    """The merged export of ``two`` scores a pair like ``one``'s with ``cdbench.create_model`` (atol 1e-4)."""
    import numpy as np

    import cdbench

    pair = (np.full((30, 40, 3), 40, np.uint8), np.full((28, 28, 3), 200, np.uint8))
    np.testing.assert_allclose(cdbench.create_model(two / "merged").score([pair]),
                               cdbench.create_model(one / "merged").score([pair]), atol=1e-4)


def _assert_resumes_after_step_2(run: Path, args: list[str], config_file: Path) -> None:
    """``run`` as it was after its step-2 checkpoint (step 3, the export and the later log lines gone),
    relaunched: it logs steps 1-3 once and ends at the uninterrupted weights (atol 1e-6)."""
    stopped = run.parent / f"{run.name}-stopped"
    shutil.copytree(run, stopped)
    for name in ("checkpoints/step-00000003", "merged"):
        shutil.rmtree(stopped / name)
    log = (stopped / "train_log.jsonl").read_text().splitlines()
    (stopped / "train_log.jsonl").write_text("\n".join(log[:2]) + "\n")
    r = _launch("accelerate", *args, nproc=2, out=stopped, config_file=config_file)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [json.loads(x)["step"] for x in (stopped / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3]
    a = load_file(str(run / "merged" / "model.safetensors"))
    b = load_file(str(stopped / "merged" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fsdp_two_cpu_processes_match_one_process_and_resume(method, mplug, dataset, workdir, request):
    """The shipped ``fsdp.yaml`` (FSDP2, one unit per ``MPLUGOwl2DecoderLayer``, sharded checkpoints) run by
    ``accelerate launch --num_processes 2`` on CPU (gloo): parameters and optimizer states are sharded (the
    checkpoint holds one shard per rank), the weights equal the one-process run's with the same global batch
    (float32, atol 1e-4 where training moves them by > 1e-3), the merged export (gathered from the shards)
    scores like the reference with ``cdbench.create_model``, and a run stopped after its step-2 checkpoint
    resumes from the shards to the uninterrupted weights."""
    one = request.getfixturevalue(f"one_process_{method}")
    args = ["--model", str(mplug), "--dataset", str(dataset), *_COMMON, f"--{method}", "--batch-size", "2",
            "--save-steps", "2"]
    two = workdir / f"fsdp-{method}"
    r = _launch("accelerate", *args, nproc=2, out=two, config_file=ACCELERATE_CONFIGS / "fsdp.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    for step in (2, 3):  # torch.distributed.checkpoint shards, one file per rank: FSDP ran, not DDP
        ckpt = two / "checkpoints" / f"step-{step:08d}"
        for part in ("pytorch_model_fsdp_0", "optimizer_0"):
            assert len(list((ckpt / part).glob("*.distcp"))) == 2
    _assert_same_training(one, two, mplug, atol=1e-4)
    _assert_export_scores_like(two, one)
    _assert_resumes_after_step_2(two, args, ACCELERATE_CONFIGS / "fsdp.yaml")


def test_fsdp_version_1_without_cuda_stops_in_one_line(mplug, dataset, tmp_path, monkeypatch, capsys):
    """accelerate's FSDP1 plugin needs a GPU-like device: a clear message before anything is loaded."""
    from cdbench.cli import main

    if torch.cuda.is_available():
        pytest.skip("the check is for machines without CUDA")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate launch exports for an FSDP config
    monkeypatch.setenv("FSDP_VERSION", "1")
    assert main(["finetune", "--model", str(mplug), "--dataset", str(dataset), *_COMMON, "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fsdp_version: 2" in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_reports_missing_inputs_in_one_line(tmp_path):
    from cdbench.cli import main

    assert main(["finetune", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    cfg = tmp_path / "train.yaml"
    cfg.write_text("lora_r: 8\nbogus: 1\n")
    assert main(["finetune", "--config", str(cfg), "--model", "m", "--dataset", "d", "--out", "o"]) == 2


def test_cli_settings_precedence_defaults_yaml_flags(tmp_path):
    from cdbench.cli import build_parser
    from cdbench.cli.finetune import config_from_args

    cfg = tmp_path / "train.yaml"
    cfg.write_text("model: base\ndataset: ds\nout: o\nlora_r: 16\nlearning_rate: 1.0e-4\nmethod: full\n")
    args = build_parser().parse_args(["finetune", "--config", str(cfg), "--lr", "3e-4", "--lora", "--freeze-vision",
                                      "--tasks", "scores", "--no-resume"])
    c = config_from_args(args)
    assert (c.model, c.lora_r, c.learning_rate, c.method, c.freeze_vision_model, c.tasks, c.resume) == (
        "base", 16, 3e-4, "lora", True, ("scores",), False)
    assert c.lora_alpha == 256 and c.warmup_ratio == 0.03  # untouched defaults stay the recipe's


def _deepspeed_on_cpu() -> None:
    """Skip unless DeepSpeed can run here on CPU processes (gloo), the path these tests check."""
    pytest.importorskip("deepspeed")
    if torch.cuda.is_available():
        pytest.skip("the DeepSpeed checks here run CPU processes (gloo); on GPUs use pytest -m gpu")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("DeepSpeed's CPU accelerator JIT-compiles its shared-memory communication op: needs a C++ compiler")


def _assert_deepspeed_checkpoint(ckpt: Path, stage: int) -> None:
    """DeepSpeed's own checkpoint files, one optimizer-state shard per rank (ZeRO-3: one parameter partition
    per rank as well): DeepSpeed ran, not DDP."""
    files = {p.name for p in (ckpt / "pytorch_model").iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)} <= files
    models = {f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in (0, 1)} if stage == 3 \
        else {"mp_rank_00_model_states.pt"}
    assert models <= files
    assert (ckpt / "latest").read_text().strip() == "pytorch_model"


@pytest.mark.parametrize(("stage", "method", "resume"), [(2, "lora", True), (3, "lora", False), (3, "full", True)])
def test_deepspeed_two_cpu_processes_match_one_process(stage, method, resume, mplug, dataset, workdir, request):
    """The shipped ``deepspeed_zero2.yaml`` / ``deepspeed_zero3.yaml`` run by ``accelerate launch --num_processes 2``
    on CPU (DeepSpeed's CPU accelerator, gloo; ``--precision fp32``, so DeepSpeed's bf16 / fp16 are off whatever
    the file's ``mixed_precision`` says): the log and the weights equal the one-process run's with the same global
    batch (float32, loss rel 1e-5, weights atol 1e-4 where training moves them by > 1e-3), the merged export
    (ZeRO-3: gathered from the partitions) scores like the reference with ``cdbench.create_model``, and a run
    stopped after its step-2 checkpoint resumes from DeepSpeed's checkpoint to the uninterrupted weights."""
    _deepspeed_on_cpu()
    one = request.getfixturevalue(f"one_process_{method}")
    config_file = ACCELERATE_CONFIGS / f"deepspeed_zero{stage}.yaml"
    args = ["--model", str(mplug), "--dataset", str(dataset), *_COMMON, f"--{method}", "--batch-size", "2",
            "--save-steps", "2"]
    two = workdir / f"zero{stage}-{method}"
    r = _launch("accelerate", *args, nproc=2, out=two, config_file=config_file)
    assert r.returncode == 0, r.stderr[-3000:]
    for step in (2, 3):
        _assert_deepspeed_checkpoint(two / "checkpoints" / f"step-{step:08d}", stage)
    _assert_same_training(one, two, mplug, atol=1e-4)
    _assert_export_scores_like(two, one)
    if resume:
        _assert_resumes_after_step_2(two, args, config_file)


def test_deepspeed_config_that_disagrees_with_the_run_stops_in_one_line(mplug, dataset, tmp_path):
    """DeepSpeed accumulates gradients itself and accelerate silently prefers the file's count: a run asking for
    another count stops, naming both, before anything is trained."""
    _deepspeed_on_cpu()
    out = tmp_path / "o"
    r = _launch("accelerate", "--model", str(mplug), "--dataset", str(dataset), *_COMMON, "--grad-accum", "2",
                nproc=2, out=out, config_file=ACCELERATE_CONFIGS / "deepspeed_zero2.yaml")
    assert r.returncode != 0
    assert "DeepSpeed config has gradient_accumulation_steps: 1 but gradient_accumulation_steps=2" in r.stderr
    assert not out.exists()


@pytest.mark.gpu
def test_deepspeed_zero3_bf16_on_cuda(mplug, dataset, workdir):
    """The recipe's engine as it runs on GPUs: the shipped ``deepspeed_zero3.yaml`` on every GPU (NCCL), full
    fine-tuning in bf16. DeepSpeed trains a bf16 copy of the module; the merged export holds the optimizer's
    float32 master weights (most trained values are not bf16-representable) and scores with ``create_model``."""
    import numpy as np

    import cdbench

    pytest.importorskip("deepspeed")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    n = torch.cuda.device_count()
    out = workdir / "zero3-cuda"
    args = ["--model", str(mplug), "--dataset", str(dataset), *_COMMON, "--full", "--precision", "bf16",
            "--batch-size", str(4 // n if 4 % n == 0 else 1), "--save-steps", "2"]
    r = _launch("accelerate", *args, nproc=n, out=out, config_file=ACCELERATE_CONFIGS / "deepspeed_zero3.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    files = {p.name for p in (out / "checkpoints" / "step-00000002" / "pytorch_model").iterdir()}
    assert {f"zero_pp_rank_{i}_mp_rank_00_optim_states.pt" for i in range(n)} <= files
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2, 3] and all(np.isfinite(x["loss"]) for x in log)
    merged, start = load_file(str(out / "merged" / "model.safetensors")), load_file(str(mplug / "model.safetensors"))
    moved = torch.cat([merged[k][merged[k] != start[k]] for k in merged])
    assert moved.numel() > 0 and float((moved == moved.bfloat16().float()).float().mean()) < 0.5
    pair = (np.full((30, 40, 3), 40, np.uint8), np.full((28, 28, 3), 200, np.uint8))
    assert np.isfinite(cdbench.create_model(out / "merged").score([pair])).all()
