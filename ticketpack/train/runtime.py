"""Where a training run runs and what it records about that: the device, the torchrun process
group, the JSON-lines log, and the provenance (versions, git commit, hardware) saved with
every checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torch.distributed as dist

from ..errors import OutputWriteError, UsageError
from ..nn.mask_training import MaskTraining
from ..models.gpt_config import GPTConfig
from ..provenance import default_provenance
from ..strict_json import json_default
from .options import TrainOptions

Event = dict[str, Any]


@dataclass
class DistContext:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistContext()
    owned = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owned = True
    return DistContext(dist.get_rank(), dist.get_world_size(), owned)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available; under torchrun, plain cuda -> this rank's LOCAL_RANK device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("device: cuda requested but no CUDA device is available")
        if "LOCAL_RANK" in os.environ and name == "cuda":
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(torch.device(name))
        return torch.device(name)
    if name != "cpu":
        raise UsageError(f"device: {name!r}, expected auto, cpu or cuda")
    return torch.device("cpu")


class JsonlLog:
    """A JSON-lines log: one event per line, written unbuffered, so a crash loses nothing and a
    write that fails (a full disk, ``/dev/full``) fails at once, as ``OutputWriteError``."""

    def __init__(self, path: str | None, append: bool) -> None:
        self.path = path
        self._fh: BinaryIO | None = None
        if path:
            folder = Path(path).parent
            if not folder.is_dir():
                raise UsageError(f"log: folder {str(folder)!r} does not exist")
            try:
                self._fh = open(path, "ab" if append else "wb", buffering=0)
            except OSError as exc:
                raise self._error(exc) from None

    def write(self, event: Event) -> None:
        if self._fh is not None:
            data = (json.dumps(event, default=json_default) + "\n").encode("utf-8")
            try:
                while data:
                    data = data[self._fh.write(data):]
            except OSError as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # unbuffered: nothing left to flush
            self._fh = None

    def _error(self, exc: OSError) -> OutputWriteError:
        return OutputWriteError(f"log {str(self.path)!r}: cannot write ({exc.strerror or exc})")


def git_commit() -> str | None:
    """The commit of the checkout ticketpack runs from, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parents[1], timeout=5,
                             capture_output=True, text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(config: GPTConfig, training: MaskTraining, opts: TrainOptions, dctx: DistContext,
               device: torch.device) -> dict:
    """Versions, commit, hardware, the exact config and how its masks train, so a number can be
    traced back."""
    return default_provenance({"git_commit": git_commit(), "device": str(device),
                               "world_size": dctx.world, "torch_threads": torch.get_num_threads(),
                               "config": config.to_dict(), "mask_training": training.to_dict(),
                               "seed": opts.seed, "options": opts.to_dict()})
