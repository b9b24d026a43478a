"""Process-group setup for ``torchrun`` (env:// init), gloo on CPU and NCCL on CUDA.

Without ``WORLD_SIZE`` > 1 in the environment everything here is a no-op on a single
process, so the same trainer code runs alone and under torchrun.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module created the process group (and destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's env vars, if there is one.

    ``device_type`` ("cpu" or "cuda") picks the backend (gloo or NCCL). An already
    initialised group (e.g. a test that spawned its own processes) is reused as is.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def mean_across(info: DistInfo, values: dict[str, float], device) -> dict[str, float]:
    """Average scalar metrics over all processes (for logging)."""
    if not info.enabled or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist())}


def weights_digest(module) -> str:
    """SHA-256 of every parameter and buffer's bytes, in state-dict order."""
    import torch

    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_same_weights(info: DistInfo, module) -> None:
    """Raise if the processes' weights differ (they must stay bit-identical under DDP)."""
    if not info.enabled:
        return
    import torch.distributed as dist

    digests: list[str | None] = [None] * info.world
    dist.all_gather_object(digests, weights_digest(module))
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks diverged: weight digests {digests}")
