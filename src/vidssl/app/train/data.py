"""Batches for the loop: a resumable distributed sampler, the per-epoch loader, device moves.

The data order of epoch ``e`` is ``DistributedSampler``'s permutation seeded with
``seed + e`` (rank r takes every W-th index from r), so it is a pure function of
``(seed, epoch)``; :class:`ResumableSampler` can start partway into it after a resume. The
loader's own generator (worker base seeds) is seeded from ``(seed, epoch)`` too, so creating a
loader never draws from the global RNG, whose state the checkpoints restore.

:func:`make_run_loader` is one loader for the whole run: its batches are
``(epoch, index)`` keys (:class:`EpochBatches`, the same batches as the per-epoch loaders), so
its workers live across epochs and prefetch over the epoch boundary instead of a new worker
being forked, and waited for, at every epoch's start.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that skips the first ``start`` indices of the epoch."""

    start: int = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return super().__len__() - self.start


def make_loader(
    dataset: Dataset,
    sampler: ResumableSampler,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    epoch: int,
    pin_memory: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """The loader of one epoch (full batches only)."""
    generator = torch.Generator().manual_seed(seed + 7919 * epoch)  # not the global RNG
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=True,
        generator=generator,
    )


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, index)`` keys for epochs ``epoch, epoch + 1, ...``, without end.

    Epoch ``e``'s batches are its ``DistributedSampler`` order (seed ``seed + e``) cut into
    ``batch_size`` pieces, the first ``batches_per_epoch`` of them (the micro-batches the loop
    trains on in an epoch); the first epoch starts at batch ``start_batch`` (a resume). The
    same batches, in the same order, as one :func:`make_loader` per epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        world: int,
        rank: int,
        *,
        seed: int,
        batch_size: int,
        batches_per_epoch: int,
        epoch: int,
        start_batch: int = 0,
    ) -> None:
        self.sampler = DistributedSampler(
            dataset, world, rank, shuffle=True, seed=seed, drop_last=True
        )  # its own: the loader draws batches ahead of the loop's epoch
        self.batch_size, self.batches_per_epoch = batch_size, batches_per_epoch
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first, b = self.epoch, self.start_batch, self.batch_size
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for k in range(first, self.batches_per_epoch):
                yield [(epoch, i) for i in order[k * b : (k + 1) * b]]
            epoch, first = epoch + 1, 0


def make_run_loader(
    dataset: Dataset,
    batches: EpochBatches,
    *,
    workers: int,
    seed: int,
    pin_memory: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """One loader for the whole run over ``(epoch, index)`` batches (module docstring)."""
    generator = torch.Generator().manual_seed(seed + 7919 * batches.epoch)  # not the global RNG
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        generator=generator,
    )


def to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """Every tensor of a (nested) batch on ``device``; 5-D float tensors in channels_last_3d."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 5 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        return batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def count_clips(batch: dict[str, Any]) -> int:
    """Clips in a collated batch: N for "video", N*K for "clips", N*V for V "views"."""
    if "views" in batch:
        return sum(int(v.shape[0]) for v in batch["views"])
    if "clips" in batch:
        return int(batch["clips"].shape[0] * batch["clips"].shape[1])
    if "video" in batch:
        return int(batch["video"].shape[0])
    return 0
