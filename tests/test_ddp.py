"""DDP equivalence: 2 gloo processes x batch 2 == 1 process x batch 4, on CPU.

The sampler gives rank r the indices ``perm[r::2]`` of the single run's permutation, so both
runs see the same 4 videos per step (with the same augmentation: it depends only on
(seed, epoch, index)). SimCLR gathers the projections of all ranks, so its negatives are the
global batch in both runs.

BatchNorm: with per-rank statistics the two runs normalise over different samples and the
results differ (checked below), so the equivalence runs use ``model.sync_bn=true``
(``CpuSyncBatchNorm``: global-batch statistics on CPU / gloo).

1. The real launcher: ``python -m torch.distributed.run --nproc_per_node 2 -m vidssl pretrain``
   against ``python -m vidssl pretrain``, fp32 (``train.amp=none``). Tolerances: step-1 loss
   (same weights, same data) 1e-4 relative (measured ~1e-5: reduction order); step-2 loss and
   all weights after two steps 2e-3 relative (measured ~3e-4). The second step starts from
   one update computed from per-rank batches of 2, whose fp32 gradients are ~2e-4 (relative)
   from float64 -- as are those of a single process run with batch 2.
2. The same Trainer in float64 (``mp.spawn``): the weights after two steps agree to 1e-9
   relative (measured ~3e-13), so the fp32 differences are rounding, not the algorithm.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

COMMON = [
    "train.max_steps=2",
    "train.log_every=1",
    "train.seed=3",
    "train.amp=none",
    "data.args.num_videos=24",
    "data.args.frames=8",
    "data.args.size=32",
    "data.clip_len=4",
    "data.size=32",
    "data.workers=0",
    "model.width=0.125",
    "method.hidden_dim=32",
    "method.out_dim=16",
    "optim.lr=0.02",
    "optim.warmup_epochs=0",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run_cli(out_dir: Path, nproc: int) -> list[float]:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    ]
    cmd = [*(launcher if nproc > 1 else [sys.executable]), "-m", "vidssl", "pretrain"]
    cmd += [
        *COMMON,
        f"train.out_dir={out_dir}",
        f"data.batch_size={4 // nproc}",
        "model.sync_bn=true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["kind"] == "step"]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _float_weights(path: Path) -> torch.Tensor:
    model = torch.load(path, weights_only=True)["model"]
    return torch.cat([v.flatten().double() for v in model.values() if v.is_floating_point()])


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path: Path) -> None:
    single = _run_cli(tmp_path / "single", 1)
    ddp = _run_cli(tmp_path / "ddp", 2)
    assert len(single) == len(ddp) == 2
    assert _rel(ddp[0], single[0]) < 1e-4, (ddp, single)
    assert _rel(ddp[1], single[1]) < 2e-3, (ddp, single)
    wa, wb = (
        _float_weights(tmp_path / "single" / "last.pt"),
        _float_weights(tmp_path / "ddp" / "last.pt"),
    )
    assert (wb - wa).norm() / wa.norm() < 2e-3


# --- float64 Trainer, spawned ---------------------------------------------------------------


class _Float64(Dataset):
    """The configured dataset with float64 views."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.dataset[i]
        sample["views"] = [v.double() for v in sample["views"]]
        return sample


def _train_float64(out_dir: Path, batch_size: int, sync_bn: bool, info: Any = None) -> None:
    from vidssl.app.train.build import build_dataset, build_method
    from vidssl.app.train.checkpoint import seed_all
    from vidssl.app.train.loop import Trainer
    from vidssl.config import load_config

    # 16 px clips: float64 convolutions have no fast CPU kernels
    extra = [
        f"data.batch_size={batch_size}",
        f"model.sync_bn={sync_bn}",
        f"train.out_dir={out_dir}",
        "data.size=16",
    ]
    cfg = load_config(None, [*COMMON, *extra])
    seed_all(cfg.train.seed)
    method = build_method(cfg).double()
    Trainer(cfg, method, _Float64(build_dataset(cfg, method)), info=info).fit()


def _worker(rank: int, port: int, root: Path) -> None:
    from vidssl import dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    info = dist.init_distributed("gloo")
    try:
        _train_float64(root / "ddp_sync", 2, True, info)
        _train_float64(root / "ddp_plain", 2, False, info)
    finally:
        dist.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_float64_trainer_ddp_is_exact(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), tmp_path), nprocs=2)
    _train_float64(tmp_path / "single", 4, True)
    single = _float_weights(tmp_path / "single" / "last.pt")
    sync = _float_weights(tmp_path / "ddp_sync" / "last.pt")
    plain = _float_weights(tmp_path / "ddp_plain" / "last.pt")
    assert (sync - single).norm() / single.norm() < 1e-9
    assert (plain - single).norm() / single.norm() > 1e-5, "per-rank BatchNorm should differ"
