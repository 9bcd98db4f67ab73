"""Exact resume: a seeded run killed with SIGKILL and resumed ends with the same weights.

Two real ``python -m vidssl pretrain`` processes run side by side with the same seed: one
uninterrupted, one killed as soon as its first checkpoint exists (mid-epoch: 4 steps per
epoch, a checkpoint every 3 steps) and then resumed with ``--resume auto``. The final
checkpoints must match bitwise (model incl. BN buffers, optimiser state), and the resumed
run's metrics.jsonl must repeat the uninterrupted losses. The default CPU path is used (bf16
autocast, channels_last_3d), so this also checks that path is deterministic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

MAX_STEPS = 20


def _args(out_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vidssl",
        "pretrain",
        f"train.out_dir={out_dir}",
        f"train.max_steps={MAX_STEPS}",
        "train.ckpt_every=3",
        "train.log_every=1",
        "train.seed=7",
        "data.args.num_videos=24",  # 18 train videos / batch 4 -> 4 steps per epoch
        "data.args.frames=8",
        "data.args.size=32",
        "data.clip_len=4",
        "data.size=32",
        "data.batch_size=4",
        "data.workers=0",
        "model.width=0.125",
        "method.hidden_dim=32",
        "method.out_dim=16",
        "optim.lr=0.05",
        "optim.warmup_epochs=1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # two runs share the two cores


def _losses(out_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "step"]


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full = subprocess.Popen(
        _args(full_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    killed = subprocess.Popen(
        _args(killed_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = killed_dir / "last.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    at_kill = torch.load(ckpt, weights_only=True)
    assert 0 < at_kill["step"] < MAX_STEPS and at_kill["batch"] % 4 != 0, "kill was not mid-epoch"

    resumed = subprocess.run(
        [*_args(killed_dir), "--resume", "auto"], env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, err = full.communicate(timeout=300)
    assert full.returncode == 0, err[-2000:]

    a = torch.load(full_dir / "last.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["step"] == b["step"] == MAX_STEPS and a["epoch"] == b["epoch"]
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), f"model entry {key} differs after resume"
    for pid, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][pid][name]), (
                f"optimizer {pid}.{name} differs"
            )
    assert _losses(full_dir) == _losses(killed_dir)
    assert [s for s, _ in _losses(killed_dir)] == list(range(1, MAX_STEPS + 1))
