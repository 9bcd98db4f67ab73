"""Rank / world helpers and cross-rank gathering.

This is the only module in the library that touches ``torch.distributed``. Every helper is a
no-op (or the identity) when no process group is initialised, so single-process code calls
them unconditionally.

Gathered tensors are rank-major: row ``rank * N + i`` of a gathered ``(W*N, ...)`` tensor is
row ``i`` of rank ``rank``'s local ``(N, ...)`` tensor. All ranks must pass the same local
shape (use ``drop_last=True`` in the sampler); a mismatch raises a ``ValueError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def is_dist() -> bool:
    """True when a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise RuntimeError(f"environment variable {name} is not set (expected from torchrun)")
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise RuntimeError(f"environment variable {name}={raw!r} is not an integer") from err


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``. Without
    ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing is initialised and rank 0 of 1 is
    returned. ``backend`` defaults to ``"nccl"`` when CUDA is available, else ``"gloo"``; on
    CUDA the current device is set to ``LOCAL_RANK``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available()
    if world_size <= 1:
        return DistInfo(0, 1, 0, torch.device("cuda", 0) if cuda else torch.device("cpu"))
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set")
    rank = _env_int("RANK")
    device = torch.device("cpu")
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not is_dist():
        dist.init_process_group(
            backend=backend or ("nccl" if cuda else "gloo"),
            init_method="env://",
            rank=rank,
            world_size=world_size,
        )
    return DistInfo(rank, world_size, local_rank, device)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if is_dist():
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def reduce_mean(x: Tensor) -> Tensor:
    """Mean of ``x`` over ranks (a new detached tensor; ``x`` itself when not distributed)."""
    if not is_dist():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / get_world_size()


def broadcast(x: Tensor, src: int = 0) -> Tensor:
    """``x`` as held by rank ``src`` (in place on the other ranks; identity when not distributed)."""
    if is_dist():
        dist.broadcast(x, src=src)
    return x


def _check_same_shape(x: Tensor) -> None:
    """Raise if the ranks hold differently shaped tensors (all_gather would hang or corrupt)."""
    shape = torch.tensor(list(x.shape), dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(shape) for _ in range(get_world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        listed = [tuple(s.tolist()) for s in shapes]
        raise ValueError(f"all ranks must gather the same shape, got {listed} (rank order)")


def _gather_cat(x: Tensor) -> Tensor:
    _check_same_shape(x)
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)  # W x (N, ...) -> (W*N, ...)


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """Concatenate ``x: (N, ...)`` from every rank -> ``(W*N, ...)``, without gradient."""
    if not is_dist():
        return x.detach()
    return _gather_cat(x.detach())


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: rank-major concatenation. Backward: the local slice of the summed gradient.

    Every rank r computes its own loss L_r from the gathered tensor G = [x_0; ...; x_{W-1}].
    The gradient of the total sum_r L_r with respect to the local x_k is
    sum_r dL_r/dG[k*N:(k+1)*N], i.e. the all-reduce (sum) of the incoming gradients, sliced to
    this rank's rows. DDP then averages parameter gradients over ranks, which turns
    sum_r L_r into mean_r L_r: the gradient of the loss on the global batch when each L_r is
    a mean over the same number of local anchors.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.rank, ctx.n = get_rank(), x.shape[0]
        return _gather_cat(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x: (N, ...)`` from every rank -> ``(W*N, ...)``, keeping the gradient.

    Identity when not distributed. See ``_AllGatherWithGrad`` for the backward rule.
    """
    if not is_dist():
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def shuffle_across_ranks(x: Tensor) -> tuple[Tensor, Tensor]:
    """Shuffle a batch across ranks (MoCo's "shuffling BN", He et al. 2020, Sec. 3.3).

    x: (N, ...) local batch. Returns this rank's ``(N, ...)`` slice of a random permutation of
    the global ``(W*N, ...)`` batch and the ``(W*N,)`` inverse permutation for
    :func:`unshuffle_across_ranks`. Identity (with ``arange`` indices) when not distributed.
    """
    if not is_dist():
        return x, torch.arange(x.shape[0], device=x.device)
    x_all = concat_all_gather(x)  # (W*N, ...)
    perm = broadcast(torch.randperm(x_all.shape[0], device=x.device), src=0)  # (W*N,)
    inverse = torch.argsort(perm)
    mine = perm.view(get_world_size(), -1)[get_rank()]  # (W*N,) -> (W, N) -> (N,)
    return x_all[mine], inverse


@torch.no_grad()
def unshuffle_across_ranks(y: Tensor, inverse: Tensor) -> Tensor:
    """Undo :func:`shuffle_across_ranks`: y (N, ...) in shuffled order -> (N, ...) local order."""
    if not is_dist():
        return y[inverse]
    y_all = concat_all_gather(y)  # (W*N, ...)
    mine = inverse.view(get_world_size(), -1)[get_rank()]  # (W*N,) -> (W, N) -> (N,)
    return y_all[mine]
