"""Command lines that start several CPU processes (gloo) for the distributed tests: ``torchrun`` or
``accelerate launch`` with one of the shipped accelerate config files."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[1] / "cdbench" / "finetune" / "accelerate_configs"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the rendezvous of one launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher_command(kind: str, nproc: int = 2, config_file: Path | None = None) -> list[str]:
    """``torchrun`` or ``accelerate launch --config_file FILE`` (default: the shipped DDP file) for ``nproc``
    processes; the file's ``num_processes`` is a machine setting, so the command line sets it."""
    port = str(free_port())
    if kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr",
                "127.0.0.1", "--master-port", port]
    config_file = config_file or ACCELERATE_CONFIGS / "multi_gpu_ddp.yaml"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--num_processes", str(nproc), "--main_process_port", port]
