"""Training engine: optimisers, schedule, checkpoints, precision, the loop, and `vidssl pretrain`."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from vidssl.app.cli import main
from vidssl.app.train.checkpoint import (
    CheckpointError,
    atomic_save,
    backbone_state_dict,
    capture_rng,
    load_checkpoint,
    restore_rng,
)
from vidssl.app.train.loop import NonFiniteLossError, Trainer
from vidssl.app.train.optim import LARS, OPTIMIZERS, build_optimizer, param_groups
from vidssl.app.train.precision import guard_bf16_conv3d
from vidssl.app.train.schedule import WarmupCosine, cosine_lr
from vidssl.config import Config, OptimConfig, load_config

pytestmark = pytest.mark.usefixtures("one_thread")


# --- test doubles -----------------------------------------------------------------------------


class ToyClips(Dataset):
    """`n` two-view samples of (3, 4, 8, 8) clips; sample i of epoch e from (e, i) only."""

    def __init__(self, n: int = 16, skipped: dict[int, int] | None = None) -> None:
        self.n, self.epoch, self.skipped = n, 0, skipped or {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.epoch, i])
        base = rng.normal(size=(3, 4, 8, 8)).astype(np.float32)
        views = [
            torch.from_numpy(base + 0.1 * rng.normal(size=base.shape).astype(np.float32))
            for _ in range(2)
        ]
        return {"views": views, "index": i, "skipped": self.skipped.get(i, 0)}


class ToyMethod(nn.Module):
    """Conv3d + BN + linear; loss = mean squared distance of the two views' embeddings."""

    recipe = "two_clips"

    def __init__(self, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, 4, 3, padding=1),
            nn.BatchNorm3d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(4, 4),
        )
        self.nan_at_call, self.calls = nan_at_call, 0
        self.progress: list[float] = []

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        self.calls += 1
        a, b = (self.net(v) for v in batch["views"])
        loss = (a - b).square().mean() + (a.square().mean() - 1).square()
        if self.calls == self.nan_at_call:
            loss = loss * float("nan")
        return {"loss": loss, "emb_norm": a.detach().norm(dim=1).mean()}

    def on_after_optimizer_step(self, progress: float) -> None:
        self.progress.append(progress)


def _toy_config(out_dir: Path, **train: Any) -> Config:
    cfg = Config()
    cfg.data.batch_size, cfg.data.workers = 4, 0
    cfg.train.out_dir, cfg.train.log_every, cfg.train.amp = str(out_dir), 1, "none"
    cfg.optim.lr, cfg.optim.warmup_epochs = 0.05, 0.0
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def _records(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


# --- optimisers and schedule ------------------------------------------------------------------


def test_lars_matches_hand_computation() -> None:
    w0, b0 = [[3.0, 4.0], [0.0, 0.0]], [1.0, -1.0]  # ||w0|| = 5
    g_w, g_b = [[0.6, 0.0], [0.0, 0.8]], [0.5, 0.25]
    lr, m, wd, eta = 0.1, 0.9, 0.01, 0.002
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    b = nn.Parameter(torch.tensor(b0, dtype=torch.float64))
    opt = LARS(
        [
            {"params": [w], "weight_decay": wd},
            {"params": [b], "weight_decay": 0.0, "lars_exclude": True},
        ],
        lr=lr,
        momentum=m,
        eta=eta,
    )
    # hand computation, plain python
    W, B = [row[:] for row in w0], b0[:]
    vw, vb = [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]
    for _ in range(2):
        w.grad = torch.tensor(g_w, dtype=torch.float64)
        b.grad = torch.tensor(g_b, dtype=torch.float64)
        opt.step()
        d = [[g_w[i][j] + wd * W[i][j] for j in range(2)] for i in range(2)]
        w_norm = math.sqrt(sum(x * x for row in W for x in row))
        d_norm = math.sqrt(sum(x * x for row in d for x in row))
        trust = eta * w_norm / d_norm
        vw = [[m * vw[i][j] + trust * d[i][j] for j in range(2)] for i in range(2)]
        W = [[W[i][j] - lr * vw[i][j] for j in range(2)] for i in range(2)]
        vb = [m * vb[k] + g_b[k] for k in range(2)]  # excluded: no trust ratio, no decay
        B = [B[k] - lr * vb[k] for k in range(2)]
    torch.testing.assert_close(w.detach(), torch.tensor(W, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(b.detach(), torch.tensor(B, dtype=torch.float64), rtol=0, atol=1e-12)


def test_lars_trust_ratio_falls_back_to_one_for_zero_weights() -> None:
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=0.5, momentum=0.0, eta=0.001)
    w.grad = torch.ones(2, 2)
    opt.step()
    assert torch.equal(w.detach(), torch.full((2, 2), -0.5))


def test_cosine_schedule_matches_hand_values() -> None:
    base, total, warmup, floor = 1.0, 10, 2, 0.1
    hand = {
        0: 0.5,  # (0 + 1) / 2
        1: 1.0,
        2: 1.0,  # cosine starts at the peak
        6: floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * 4 / 8)),  # half way: 0.55
        9: floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * 7 / 8)),
    }
    for step, expected in hand.items():
        assert cosine_lr(step, base, total, warmup, floor) == pytest.approx(expected, abs=1e-12)
    assert cosine_lr(6, base, total, warmup, floor) == pytest.approx(0.55)

    p, q = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.5}], lr=1.0)
    sched = WarmupCosine(opt, total, warmup, floor)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.25]  # step 0, each group its own base
    sched.set_step(6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.55)
    assert opt.param_groups[1]["lr"] == pytest.approx(floor + (0.5 - floor) * 0.5)


@pytest.mark.parametrize("name", ["simsiam", "byol", "cstp"])
def test_fixed_predictor_lr_keeps_the_predictor_at_the_base_lr(name: str) -> None:
    from vidssl.app.train.build import build_method

    head = ["method.hidden_dim=16", "method.out_dim=8", "method.predictor_hidden_dim=8"]
    kwargs = (
        head + ["method.fix_predictor_lr=true"]
        if name != "cstp"
        else [
            "method.contrastive=simsiam",
            'method.contrastive_kwargs={"hidden_dim": 16, "out_dim": 8, '
            '"predictor_hidden_dim": 8, "fix_predictor_lr": true}',
        ]
    )
    cfg = load_config(None, [f"method.name={name}", "model.width=0.125", *kwargs])
    method = build_method(cfg)
    prefix = "ctr.predictor." if name == "cstp" else "predictor."
    assert method.constant_lr_prefixes() == (prefix,)
    predictor = {id(p) for n, p in method.named_parameters() if n.startswith(prefix)}
    assert predictor
    opt = build_optimizer(method, OptimConfig(name="sgd", lr=0.2, weight_decay=0.1))
    sched = WarmupCosine(opt, total_steps=10, warmup_steps=2, min_lr=0.0)
    for step, scheduled in [(0, 0.1), (5, 0.2 * 0.5 * (1 + math.cos(math.pi * 3 / 8))), (9, None)]:
        lr = sched.set_step(step)
        for group in opt.param_groups:
            ids = {id(p) for p in group["params"]}
            assert ids <= predictor or not ids & predictor  # no group mixes the two
            if ids <= predictor:
                assert group["constant_lr"] and group["lr"] == 0.2
            elif scheduled is not None:
                assert group["lr"] == pytest.approx(scheduled)
        assert lr == sched.current_lr() < 0.2  # the scheduled groups, not the fixed ones
    # both kinds of group keep their weight decay: decayed weights and undecayed norms
    fixed = [g["weight_decay"] for g in opt.param_groups if g["constant_lr"]]
    assert sorted(fixed) == [0.0, 0.1]
    # off by default: one schedule for every parameter
    base = name if name != "cstp" else "simsiam"
    plain = build_method(load_config(None, [f"method.name={base}", "model.width=0.125", *head]))
    assert plain.constant_lr_prefixes() == ()
    assert not any(g.get("constant_lr") for g in build_optimizer(plain, OptimConfig()).param_groups)


def test_param_groups_exclude_norms_and_biases_from_decay() -> None:
    from vidssl.app.train.build import build_method

    cfg = load_config(
        None,
        ["method.name=moco", "model.width=0.125", "method.hidden_dim=16", "method.queue_size=32"],
    )
    method = build_method(cfg)
    groups = param_groups(method, weight_decay=0.3)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert (
        groups[0]["weight_decay"] == 0.3
        and groups[1]["weight_decay"] == 0.0
        and groups[1]["lars_exclude"]
    )
    for module in method.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:  # MoCo's momentum encoder: not optimised at all
                assert id(p) not in decay | no_decay
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) or name == "bias":
                assert id(p) in no_decay, f"{type(module).__name__}.{name} must not be decayed"
            else:
                assert isinstance(module, nn.Conv3d | nn.Linear) and id(p) in decay
    assert len(decay) + len(no_decay) == sum(p.requires_grad for p in method.parameters())
    for name in OPTIMIZERS:  # every optimiser keeps the two groups' decay
        opt = build_optimizer(method, OptimConfig(name=name, weight_decay=0.3))
        assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]


# --- checkpoints ------------------------------------------------------------------------------


def test_atomic_save_failure_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    atomic_save({"model": {"w": torch.ones(3)}, "step": 1}, path)
    before = path.read_bytes()

    def torn_save(obj: Any, f: Any) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr("vidssl.app.train.checkpoint.torch.save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"model": {"w": torch.zeros(3)}, "step": 2}, path)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_checkpoint_loads_weights_only_and_rejects_pickled_code(tmp_path: Path) -> None:
    atomic_save(
        {
            "model": {"backbone.w": torch.ones(2), "projector.w": torch.zeros(2)},
            "rng": capture_rng(),
        },
        tmp_path / "ok.pt",
    )
    ckpt = load_checkpoint(tmp_path / "ok.pt")
    assert list(backbone_state_dict(ckpt)) == ["w"]
    torch.save({"model": {}, "evil": ToyMethod()}, tmp_path / "code.pt")  # a pickled class
    with pytest.raises(CheckpointError, match="code.pt"):
        load_checkpoint(tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip() -> None:
    state = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# --- the loop ---------------------------------------------------------------------------------


def test_trainer_runs_logs_and_counts_skipped(tmp_path: Path) -> None:
    method = ToyMethod()
    cfg = _toy_config(tmp_path, epochs=2, ckpt_every=3)
    trainer = Trainer(cfg, method, ToyClips(16, skipped={1: 2, 6: 1}))
    assert trainer.steps_per_epoch == 4 and trainer.total_steps == 8
    trainer.fit()
    records = _records(tmp_path)
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert {"step", "epoch", "loss", "lr", "clips_per_s", "emb_norm"} <= set(steps[0])
    assert [(r["epoch"], r["skipped"]) for r in epochs] == [(0, 3), (1, 3)]
    assert method.progress == [s / 8 for s in range(1, 9)]
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 8


def test_nonfinite_loss_stops_without_overwriting_checkpoint(tmp_path: Path) -> None:
    cfg = _toy_config(tmp_path, epochs=3, ckpt_every=2)
    trainer = Trainer(cfg, ToyMethod(nan_at_call=4), ToyClips(16))
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss nan at step 4 .*step 2, left untouched"
    ):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    assert [r["step"] for r in _records(tmp_path)] == [1, 2, 3]


def test_guarded_bf16_conv3d_weight_gradient_matches_fp32() -> None:
    """oneDNN's bf16 weight gradient is garbage for 1 < T < kernel depth; the guard fixes it.

    Tolerance: bf16 rounding of inputs and grad_output gives ~0.5% relative error on this
    reduction; the unguarded kernel is off by orders of magnitude (NaN / 1e38).
    """
    torch.manual_seed(0)
    conv = nn.Conv3d(16, 16, 3, padding=1, bias=False)
    x, gy = torch.randn(4, 16, 2, 4, 4), torch.randn(4, 16, 2, 4, 4)
    ref = torch.autograd.grad(conv(x), conv.weight, gy)[0]
    assert guard_bf16_conv3d(conv) == 1
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        grad = torch.autograd.grad(y, conv.weight, gy.to(y.dtype))[0].float()
        assert y.dtype == torch.bfloat16  # still the bf16 kernel
        assert (grad - ref).norm() / ref.norm() < 2e-2


def test_bf16_default_path_tracks_fp32_loss_curve(tmp_path: Path) -> None:
    """bf16 + channels_last_3d (the CPU default) vs fp32: 16 SimCLR steps, same data and init.

    Tolerances. Step 1 (same weights, bf16 forward only): within 2%. Later steps: this tiny
    SimCLR run amplifies any perturbation (fp32 with channels_last alone, a ~1e-5 gradient
    change, moves the last-8-step mean by up to 15%), so per-step equality is not expected;
    we require that both runs learn (last-8 mean < 70% of chance, log(2N - 1)) and that the
    last-8 means agree within 25%.
    """
    from vidssl.app.train.build import build_trainer

    def curve(amp: str) -> list[float]:
        out = tmp_path / amp
        overrides = [
            "data.args.num_videos=22",  # 16 train videos = one batch of 16
            "data.args.frames=8",
            "data.args.size=32",
            "data.clip_len=4",
            "data.size=32",
            "data.batch_size=16",
            "data.workers=0",
            "data.recipe.same_clip=true",
            "data.recipe.p_jitter=0",
            "data.recipe.p_gray=0",
            "model.width=0.125",
            "method.hidden_dim=64",
            "method.out_dim=32",
            "optim.lr=0.02",
            "optim.warmup_epochs=0",
            "train.max_steps=16",
            "train.log_every=1",
            f"train.amp={amp}",
            f"train.out_dir={out}",
        ]
        build_trainer(load_config(None, overrides)).fit()
        return [r["loss"] for r in _records(out) if r["kind"] == "step"]

    bf16, fp32 = curve("bf16"), curve("none")
    chance = math.log(2 * 16 - 1)
    assert abs(bf16[0] - fp32[0]) < 0.02 * fp32[0]
    tail_bf16, tail_fp32 = sum(bf16[-8:]) / 8, sum(fp32[-8:]) / 8
    assert tail_fp32 < 0.7 * chance and tail_bf16 < 0.7 * chance
    assert abs(tail_bf16 - tail_fp32) < 0.25 * tail_fp32, (bf16, fp32)


# --- `vidssl pretrain` end to end ---------------------------------------------------------------


def test_pretrain_cli_end_to_end_writes_run_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "pretrain",
            f"train.out_dir={out}",
            "train.epochs=1",
            "train.log_every=1",
            "data.args.num_videos=11",  # 8 train videos -> 2 steps of 4
            "data.args.frames=8",
            "data.args.size=32",
            "data.clip_len=4",
            "data.size=32",
            "data.batch_size=4",
            "data.workers=1",
            "model.width=0.125",
            "method.hidden_dim=32",
            "method.out_dim=16",
        ]
    )
    assert code == 0
    records = _records(out)
    assert [r["kind"] for r in records] == ["step", "step", "epoch"]
    for record in records:
        assert {"step", "epoch", "loss", "lr", "clips_per_s"} <= set(record)
        assert math.isfinite(record["loss"]) and record["clips_per_s"] > 0
    assert records[-1]["skipped"] == 0 and records[-1]["step"] == 2
    assert list((out / "tb").glob("events.out.tfevents.*"))
    saved = load_config(str(out / "config.yaml"), [])
    assert saved.train.out_dir == str(out) and saved.method.hparams["hidden_dim"] == 32
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 2 and ckpt["epoch"] == 1 and ckpt["config"]["model"]["width"] == 0.125
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "scaler", "rng", "data", "epoch_stats"}
    assert backbone_state_dict(ckpt)


def test_read_metrics_keeps_step_records_and_counts_the_rest(tmp_path: Path) -> None:
    from vidssl.app.train.logging import METRICS_NAME, read_metrics

    path = tmp_path / METRICS_NAME
    assert read_metrics(path) == ([], 0)  # a run that has not logged yet
    good = [{"kind": "step", "step": 10, "loss": 1.0}, {"kind": "epoch", "step": 12.0}]
    lines = [json.dumps(good[0]), "", "not json", "[1, 2]", '{"step": true}', '{"loss": 2}']
    path.write_text("\n".join([*lines, json.dumps(good[1])]) + "\n")
    assert read_metrics(path) == (good, 4)
