"""Checkpoints: atomic writes, ``weights_only`` loads, and the RNG state needed to resume exactly.

A checkpoint is a dict of tensors and primitive containers only, so that it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load):

    model       method.state_dict() (backbone under "backbone.", heads, method buffers such as
                the MoCo queue and pointer); a module registered under two names is stored
                once (``Method.state_aliases``, e.g. CVTCL's ``rgb.backbone.`` = ``backbone.``)
                and method.load_state_dict restores the alias (older files hold both names)
    optimizer   optimizer.state_dict()
    scheduler   WarmupCosine.state_dict()
    scaler      GradScaler.state_dict()
    epoch, step, batch   position: epoch, optimiser steps done, micro-batches done in the epoch
    epoch_stats running sums of the unfinished epoch (loss, micro-batches, clips, skipped)
    rng         one entry per rank: python / numpy / torch (/ cuda) generator states as tensors
    data        {"seed"}: the data order is a pure function of (seed, epoch), so seed, epoch
                and batch locate the next batch
    config      the resolved config as a plain dict
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed

from vidssl.eval.weights import (  # noqa: F401  (the library reads checkpoints; re-exported)
    CheckpointError,
    backbone_state_dict,
    load_checkpoint,
)

CHECKPOINT_NAME = "last.pt"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, rename over ``path``.

    A crash or error at any point leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def training_state(
    method: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    scaler: torch.amp.GradScaler,
    rngs: list[dict[str, Any]],
    seed: int,
) -> dict[str, Any]:
    """The state entries of a checkpoint (the loop adds position, epoch_stats and config)."""
    return {
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rngs,
        "data": {"seed": seed},
    }


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """This process's python / numpy / torch (/ CUDA) generator states, as tensors and primitives."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng(world_size: int) -> list[dict[str, Any]]:
    """Every rank's :func:`capture_rng` (rank order); a collective when ``world_size > 1``."""
    if world_size == 1:
        return [capture_rng()]
    states: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(states, capture_rng())
    return states


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def all_finite(module: torch.nn.Module) -> bool:
    """True when every parameter and floating buffer of ``module`` is finite."""
    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)
