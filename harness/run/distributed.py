"""Scaling out with `torchrun`: the process group, rank queries, gathering, and
agreement on errors so that one failing rank never leaves the others waiting.

Without torchrun's environment (WORLD_SIZE unset or 1) no process group is made and every helper is a no-op:
`together(work)` is `work()`, `all_gather(x)` is `[x]`, and so on. Plugins use this module (not
torch.distributed directly) to ask whether they run distributed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from harness.errors import DistributedError, HarnessError, first_line

T = TypeVar("T")
TIMEOUT_ENV = "HARNESS_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 6 * 3600.0  # as long as the weight-cache lock: one rank may train while the others wait
_SHARED, _DESYNCED = "_harness_shared_with_ranks", "_harness_ranks_desynced"


@dataclass(frozen=True)
class Failure:
    """One rank's error, as exchanged between ranks: rank, exit code and a one-line message."""

    rank: int
    exit_code: int
    message: str


# --------------------------------------------------------------------------- the process group


def env_world_size() -> int:
    """WORLD_SIZE from torchrun's environment (1 when unset)."""
    return _env_int("WORLD_SIZE", 1)


def env_rank() -> int:
    """RANK from torchrun's environment (0 when unset)."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """LOCAL_RANK from torchrun's environment: this rank's index on its node (0 when unset)."""
    return _env_int("LOCAL_RANK", 0)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def timeout_s() -> float:
    """How long a collective may wait for the other ranks: $HARNESS_DIST_TIMEOUT_S, else 6 hours."""
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise DistributedError(f"{TIMEOUT_ENV} must be > 0 seconds, got {value}")
    return seconds


def choose_backend() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors where CUDA and NCCL are available."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def setup() -> bool:
    """Join torchrun's process group (env:// rendezvous) when WORLD_SIZE > 1; whether this run is distributed."""
    if env_world_size() <= 1:
        return False
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank() % torch.cuda.device_count())
        try:
            dist.init_process_group(choose_backend(), timeout=timedelta(seconds=timeout_s()))
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"cannot join the torchrun process group: {first_line(exc)}") from None
    return is_distributed()


def shutdown(sync: bool = True) -> None:
    """Leave the process group: with `sync`, after every rank got here (so rank 0 has printed its messages)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if sync and is_distributed():
        dist.barrier()
    if sync:
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this is rank 0, the one that writes outputs and prints (always true without a process group)."""
    return rank() == 0


def backend() -> str | None:
    """The process group's backend (None without one)."""
    return str(dist.get_backend()) if is_distributed() else None


def describe() -> dict[str, Any] | None:
    """For the manifest: world size and backend (None when not distributed)."""
    if not is_distributed():
        return None
    return {"world_size": world_size(), "backend": backend(), "launcher": "torchrun",
            "sharding": "whole test batches, round-robin (rank r: batches r, r+N, ...)"}


def device_for_rank(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device becomes cuda:LOCAL_RANK (one GPU per rank); other devices are kept."""
    if device.type != "cuda" or not is_distributed() or not torch.cuda.is_available():
        return device
    return torch.device("cuda", local_rank() % torch.cuda.device_count())


def barrier() -> None:
    """Wait until every rank gets here."""
    if is_distributed():
        dist.barrier()


# --------------------------------------------------------------------------- collectives


def all_gather(obj: T) -> list[T]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast(obj: T, src: int = 0) -> T:
    """Rank `src`'s `obj` (picklable) on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums over ranks (float64; exact for counts)."""
    if not is_distributed():
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer with rank `src`'s, in place."""
    if not is_distributed():
        return
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        dist.broadcast(tensor.data, src=src)


# --------------------------------------------------------------------------- errors across ranks


def together(work: Callable[[], T]) -> T:
    """Run `work` on every rank, then agree: when any rank raised, every rank raises (no rank waits forever)."""
    if not is_distributed():
        return work()
    try:
        result = work()
    except Exception as exc:
        if not (getattr(exc, _DESYNCED, False) or getattr(exc, _SHARED, False)):  # a shared one: all raise it
            agree(exc)
        raise
    agree(None)
    return result


def on_main(work: Callable[[], T], share: bool = True) -> T | None:
    """Run `work` on rank 0 only while the others wait; with `share`, every rank gets rank 0's result."""
    if not is_distributed():
        return work()
    result = together(lambda: work() if is_main() else None)
    return broadcast(result) if share else result


def main_first(work: Callable[[], T]) -> T:
    """Run `work` on rank 0, then on the other ranks (e.g. rank 0 creates a shared file the others read)."""
    if not is_distributed():
        return work()
    first = together(lambda: work() if is_main() else None)
    later = together(lambda: None if is_main() else work())
    return first if is_main() else later  # type: ignore[return-value]


def agree(error: BaseException | None) -> None:
    """Tell every rank whether this one failed; when any did, raise on every rank (the own error, if any)."""
    mine = None if error is None else Failure(rank(), _exit_code(error), _one_line(error))
    reports = all_gather(mine)
    if any(r is not None and not isinstance(r, Failure) for r in reports):
        raise DistributedError("the ranks are out of step (a rank was in another collective operation)")
    failures = [r for r in reports if r is not None]
    if not failures:
        return
    if error is not None:
        setattr(error, _SHARED, True)
        raise error
    first = failures[0]
    shared = DistributedError(f"rank {first.rank} failed: {first.message}", exit_code=first.exit_code)
    setattr(shared, _SHARED, True)
    raise shared


def mark_desynced(exc: BaseException) -> BaseException:
    """Mark an error raised while ranks may be inside different collectives (e.g. mid-DDP step): `together`
    then re-raises it at once; the process exits and torchrun stops the other ranks."""
    setattr(exc, _DESYNCED, True)
    return exc


def shared_with_main(exc: BaseException) -> bool:
    """Whether rank 0 knows of this error (so it prints it and every rank can leave in step)."""
    return bool(getattr(exc, _SHARED, False))


def _exit_code(error: BaseException) -> int:
    return int(getattr(error, "exit_code", 3)) if isinstance(error, HarnessError) else 3


def _one_line(error: BaseException) -> str:
    if isinstance(error, HarnessError):
        return error.one_line()
    return f"internal error: {type(error).__name__}: {' '.join(str(error).split())}"
