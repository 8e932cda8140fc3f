"""One fixed configuration for training runs, so the same seed builds the same artifacts.

Where torch allows: on the CPU, with the same libraries and the same thread count, a seeded
run is bit-for-bit the same (the thread count changes how float sums are split, so it is
fixed and written to the manifest). On CUDA, deterministic algorithms are asked for with
``warn_only`` (an op without a deterministic kernel warns instead of failing), so GPU builds
are close but not guaranteed identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

# Torch CPU threads while training. Results depend on it (reduction order), so it is the
# same everywhere by default; the tiny models gain little from more (README: 2 CPU cores).
TRAIN_THREADS = 2
# cuBLAS needs a fixed workspace for deterministic matrix products (CUDA >= 10.2).
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


@dataclass(frozen=True)
class _TorchState:
    threads: int
    deterministic: bool
    warn_only: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool

    @classmethod
    def now(cls) -> _TorchState:
        return cls(
            torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark,
        )

    def restore(self) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's generators (all devices), as transformers does."""
    from transformers import set_seed

    set_seed(seed)


@contextmanager
def reproducible(seed: int, threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Run the body seeded, on ``threads`` torch threads, with deterministic algorithms; the
    caller's torch settings are restored afterwards (tests train in the serving process)."""
    if threads < 1:
        raise ValueError("threads must be at least 1")
    before = _TorchState.now()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    seed_everything(seed)
    try:
        yield
    finally:
        before.restore()
