"""MTCL attention blocks, the CSTP and MTCL methods, their configs and one CLI run of each."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import default_collate

from vidssl.config import ConfigError, load_config, validate
from vidssl.data import pretext as P
from vidssl.data.recipes import RECIPES
from vidssl.losses.pretext import pretext_contrastive
from vidssl.methods import METHODS
from vidssl.methods.byol import BYOL
from vidssl.methods.cstp import CONTRASTIVE, CSTP, CTR_SCALE
from vidssl.methods.mtcl import MTCL
from vidssl.methods.pretext import Pretext
from vidssl.models.backbones import BACKBONES, create_backbone
from vidssl.models.backbones.attention import (
    ATTENTION,
    ATTENTION_BACKBONES,
    SpatialChannelAttention,
    TemporalAttention,
    r2plus1d_18_sta,
    stage_frames,
)
from vidssl.models.backbones.base import pooled_features
from vidssl.models.backbones.resnet3d import r2plus1d_18

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("cstp/*.yaml")) + sorted(
    (REPO / "configs").glob("mtcl/*.yaml")
)
MY_METHODS = {"cstp": CSTP, "mtcl": MTCL, "pretext": Pretext}


pytestmark = pytest.mark.usefixtures("one_thread")

PROBE_LCON = Path(__file__).resolve().parents[1] / "benchmarks" / "probe_lcon.py"


class NoiseVideo:
    """VideoSource with random frames (a fixed function of the frame index)."""

    path, num_frames, fps = "noise", 60, 25.0

    def get_frames(self, indices: Any) -> np.ndarray:
        frames = [np.random.default_rng(int(i)).integers(0, 256, (20, 20, 3)) for i in indices]
        return np.stack(frames).astype(np.uint8)  # (T, H, W, 3)

    def close(self) -> None:
        pass


def make_batch(method: nn.Module, n: int = 6, clip_len: int = 4) -> dict[str, Any]:
    recipe = P.PRETEXT_RECIPES[method.recipe](
        clip_len=clip_len, stride=1, size=16, **method.recipe_overrides
    )
    return default_collate([recipe(NoiseVideo(), np.random.default_rng(i)) for i in range(n)])


def tiny_backbone(**kw: Any) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone("r2plus1d_18", width=0.125, **kw)


TINY_CTR: dict[str, dict[str, Any]] = {
    "simclr": {},
    "moco": {"queue_size": 16},
    "byol": {"predictor_hidden_dim": 32},
    "simsiam": {"predictor_hidden_dim": 32},
}


def tiny_cstp(contrastive: str = "byol", **kw: Any) -> CSTP:
    kwargs = {"hidden_dim": 32, "out_dim": 16, **TINY_CTR[contrastive]}
    return CSTP(tiny_backbone(), contrastive=contrastive, contrastive_kwargs=kwargs, **kw)


def fit(method: nn.Module, batch: dict[str, Any], steps: int, lr: float) -> list[float]:
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        loss = method.training_step(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.on_after_optimizer_step((step + 1) / steps)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses), losses
    return losses


# --- attention (MTCL sec. 2.2) ------------------------------------------------------------------


def pin_gates_to_one(model: nn.Module) -> int:
    """Gate at 1: the last FC of every SA / TA block outputs a huge logit, sigmoid == 1.0."""
    count = 0
    for m in model.modules():
        if isinstance(m, SpatialChannelAttention | TemporalAttention):
            with torch.no_grad():
                m.fc2.weight.zero_()
                m.fc2.bias.fill_(1e4)
            count += 1
    return count


def test_attention_blocks_preserve_shapes() -> None:
    x = torch.randn(2, 32, 5, 6, 7)
    assert SpatialChannelAttention(32)(x).shape == x.shape
    assert TemporalAttention(5)(x).shape == x.shape
    assert SpatialChannelAttention(32).fc1.out_features == 2  # r = 16
    assert TemporalAttention(9).fc1.out_features == 3  # r' = 3
    assert TemporalAttention(4)(x).shape == x.shape  # another clip length still runs


def test_temporal_attention_resamples_other_clip_lengths() -> None:
    """T != num_frames: Z' is resampled linearly to the built length and S' back to T."""
    torch.manual_seed(0)
    ta = TemporalAttention(4, reduction=1)
    for p in ta.parameters():
        nn.init.normal_(p)
    u = torch.randn(2, 3, 7, 2, 2)

    def interp(v: np.ndarray, length: int) -> np.ndarray:  # linear, half-pixel centres
        src = (np.arange(length) + 0.5) * len(v) / length - 0.5
        return np.interp(src, np.arange(len(v)), v)

    with torch.no_grad():
        for n in range(2):
            z = u[n].mean(dim=(0, 2, 3)).numpy()  # eq. (4): (7,)
            z4 = torch.from_numpy(interp(z, 4)).float()
            s = torch.sigmoid(ta.fc2(torch.relu(ta.fc1(z4)))).numpy()  # eq. (5) at T = 4
            ref = torch.from_numpy(interp(s, 7)).float()
            torch.testing.assert_close(ta.gates(u)[n], ref)


def test_attention_equals_hand_written_eqs_1_to_6() -> None:
    torch.manual_seed(0)
    u = torch.randn(2, 8, 3, 4, 5)  # (N, C, T, H, W)
    sa, ta = SpatialChannelAttention(8, reduction=4), TemporalAttention(3, reduction=1)
    for m in (sa, ta):  # non-trivial weights (the backbone init is N(0, 0.01))
        for p in m.parameters():
            nn.init.normal_(p)
    ref_sa, ref_ta = torch.empty_like(u), torch.empty_like(u)
    with torch.no_grad():
        for n in range(2):
            for t in range(3):
                z = u[n, :, t].mean(dim=(1, 2))  # eq. (1): (C,)
                s = torch.sigmoid(sa.fc2(torch.relu(sa.fc1(z))))  # eq. (2)
                ref_sa[n, :, t] = s[:, None, None] * u[n, :, t]  # eq. (3)
            z = torch.stack([u[n, :, t].mean() for t in range(3)])  # eq. (4): (T,)
            s = torch.sigmoid(ta.fc2(torch.relu(ta.fc1(z))))  # eq. (5)
            for t in range(3):
                ref_ta[n, :, t] = s[t] * u[n, :, t]  # eq. (6)
        torch.testing.assert_close(sa(u), ref_sa)
        torch.testing.assert_close(ta(u), ref_ta)


@pytest.mark.parametrize("attention", ["sa", "ta", "sa+ta"])
def test_gates_at_one_reduce_to_the_plain_r2plus1d(attention: str) -> None:
    torch.manual_seed(0)
    plain = r2plus1d_18(width=0.125).eval()
    model = r2plus1d_18_sta(width=0.125, attention=attention, num_frames=4).eval()
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".extra." in k for k in result.missing_keys)
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(pooled_features(model, x), pooled_features(plain, x))
        per_block = {"sa": 1, "ta": 1, "sa+ta": 2}[attention]
        assert pin_gates_to_one(model) == 8 * per_block  # every block of stages 2-5
        assert torch.equal(pooled_features(model, x), pooled_features(plain, x))


def test_attention_backbones_and_stage_frames() -> None:
    assert [stage_frames(9, s) for s in range(1, 5)] == [9, 5, 3, 2]
    assert [stage_frames(16, s) for s in range(1, 5)] == [16, 8, 4, 2]
    assert set(ATTENTION) == {"none", "sa", "ta", "sa+ta"}
    assert set(ATTENTION_BACKBONES) == {"r2plus1d_18_sa", "r2plus1d_18_ta", "r2plus1d_18_sta"}
    plain = r2plus1d_18_sta(width=0.125, attention="none").state_dict()
    assert plain.keys() == r2plus1d_18(width=0.125).state_dict().keys()
    for frames in (4, 9):
        model = ATTENTION_BACKBONES["r2plus1d_18_sta"](width=0.125, num_frames=frames)
        out = pooled_features(model, torch.randn(2, 3, frames, 16, 16))
        assert out.shape == (2, model.feature_dim) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="attention"):
        r2plus1d_18_sta(attention="channel")


# --- CSTP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("contrastive", sorted(CONTRASTIVE))
def test_cstp_every_scheme_forward_backward_eq5(contrastive: str) -> None:
    method = tiny_cstp(contrastive)
    out = method.training_step(make_batch(method))
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    for key in ("loss_ctr", "loss_pcls", "loss_rcls", "loss_ocls", "acc_pace", "acc_overlap_t"):
        assert key in out
    expected = 0.1 * out["loss_ctr"] + out["loss_pcls"] + out["loss_rcls"] + out["loss_ocls"]
    torch.testing.assert_close(out["loss"].detach(), expected)  # eq. (5) with the defaults
    torch.testing.assert_close(out["loss_ocls"], out["loss_overlap_s"] + out["loss_overlap_t"])
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    method.on_after_optimizer_step(0.5)


def test_cstp_weights_and_switches() -> None:
    method = tiny_cstp(lambda_ctr=0.5, lambda_rcls=2.0, overlap_weights=(0.5, 3.0))
    out = method.training_step(make_batch(method))
    ocls = 0.5 * out["loss_overlap_s"] + 3.0 * out["loss_overlap_t"]  # eq. (4)
    torch.testing.assert_close(out["loss_ocls"], ocls)
    ref = 0.5 * out["loss_ctr"] + out["loss_pcls"] + 2.0 * out["loss_rcls"] + out["loss_ocls"]
    torch.testing.assert_close(out["loss"].detach(), ref)
    # Table 2 Exp. 7 (playback rate + STOR): no contrastive networks, no rotation head
    row = tiny_cstp(lambda_ctr=0.0, lambda_rcls=0.0)
    assert row.ctr is None and set(row.clip_heads.heads) == {"pace"}
    assert set(row.pair_heads.heads) == {"overlap_s", "overlap_t"}
    out = row.training_step(make_batch(row))
    assert {k for k in out if k.startswith("loss_")} == {
        "loss_pcls",
        "loss_ocls",
        "loss_overlap_s",
        "loss_overlap_t",
    }
    only_t = tiny_cstp(lambda_ctr=0.0, lambda_pcls=0.0, lambda_rcls=0.0, overlap_weights=(0, 1))
    assert set(only_t.pair_heads.heads) == {"overlap_t"}  # CSTP Table 5: temporal overlap only
    with pytest.raises(ValueError, match="switched off"):
        tiny_cstp(lambda_ctr=0.0, lambda_pcls=0.0, lambda_rcls=0.0, lambda_ocls=0.0)
    with pytest.raises(ValueError, match="method.contrastive"):
        CSTP(tiny_backbone(), contrastive="barlow")
    with pytest.raises(ValueError, match="method.contrastive_kwargs"):
        CSTP(tiny_backbone(), contrastive_kwargs={"queue_size": 8})  # not a BYOL argument
    with pytest.raises(ValueError, match="method.lambda_pcls"):
        CSTP(tiny_backbone(), lambda_pcls=-1.0)


@pytest.mark.parametrize("contrastive", sorted(CONTRASTIVE))
def test_cstp_composes_the_contrastive_method_on_shared_features(contrastive: str) -> None:
    """L_ctr alone equals the plain method's loss, with one online backbone pass per view."""
    method = tiny_cstp(contrastive, lambda_ctr=1.0, lambda_pcls=0, lambda_rcls=0, lambda_ocls=0)
    kwargs = {"hidden_dim": 32, "out_dim": 16, **TINY_CTR[contrastive]}
    plain = CONTRASTIVE[contrastive](tiny_backbone(), **kwargs)
    batch = make_batch(method)
    calls: list[int] = []
    method.backbone.stem.register_forward_hook(lambda m, i, o: calls.append(1))
    ours = method.training_step(batch)
    ref = plain.training_step({"views": batch["views"]})
    torch.testing.assert_close(ours["loss"], CTR_SCALE[contrastive] * ref["loss"])
    assert len(calls) == 2  # v and v' once each through the online backbone
    assert method.ctr is not None and method.ctr.backbone.inner is method.backbone


def test_cstp_byol_term_is_eq3_scale_against_a_hand_written_reference() -> None:
    """L_ctr for BYOL is eq. (3) as a batch mean over both directions (+ 1), range [0, 2]:
    1 - (mean_i cos(q_i, z'_i) + mean_i cos(q'_i, z_i)) / 2, so λ_ctr = 0.1 weighs 0.1 of it."""
    method = tiny_cstp("byol", lambda_ctr=1.0, lambda_pcls=0, lambda_rcls=0, lambda_ocls=0)
    batch = make_batch(method)
    v1, v2 = batch["views"]
    out = method.training_step(batch)
    byol = method.ctr
    assert isinstance(byol, BYOL)
    with torch.no_grad():  # same weights, same batch statistics: the same q and z'
        q1, q2 = byol.predict(v1), byol.predict(v2)
        z1, z2 = byol.target(v1), byol.target(v2)
    cos12 = (F.normalize(q1, dim=1) * F.normalize(z2, dim=1)).sum(1).mean()
    cos21 = (F.normalize(q2, dim=1) * F.normalize(z1, dim=1)).sum(1).mean()
    reference = 1.0 - 0.5 * (cos12 + cos21)
    torch.testing.assert_close(out["loss"].detach(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_ctr"], reference, rtol=1e-5, atol=1e-6)
    assert 0.0 <= float(out["loss"].detach()) <= 2.0
    joint = tiny_cstp("byol")  # paper weights: λ_ctr = 0.1 on the same scale
    parts = joint.training_step(batch)
    expected = 0.1 * parts["loss_ctr"] + parts["loss_pcls"] + parts["loss_rcls"]
    torch.testing.assert_close(parts["loss"].detach(), expected + parts["loss_ocls"])
    assert float(parts["loss_ctr"]) <= 2.0


def test_cstp_state_dict_round_trip_keeps_sharing() -> None:
    method = tiny_cstp("moco")
    method.training_step(make_batch(method))  # moves the MoCo queue pointer
    fresh = tiny_cstp("moco")
    fresh.load_state_dict(method.state_dict())  # strict
    assert fresh.ctr.backbone.inner is fresh.backbone
    assert int(fresh.ctr.queue_ptr) == int(method.ctr.queue_ptr) == 6
    for (name, a), b in zip(method.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_cstp_loss_falls_on_a_tiny_batch() -> None:
    method = tiny_cstp("byol")
    losses = fit(method, make_batch(method, n=8), steps=10, lr=0.05)
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


# --- MTCL ---------------------------------------------------------------------------------------


def test_mtcl_forward_backward_eq7_and_view_order() -> None:
    method = MTCL(tiny_backbone())
    assert method.tasks == ("pace", "order", "rotation", "jigsaw")
    assert method.groups.tolist() == [0, 0, 1, 1]  # TP, TO temporal; SR, SJ spatial
    batch = make_batch(method, clip_len=6)
    out = method.training_step(batch)
    task_sum = sum(out[f"loss_{t}"] for t in method.tasks)
    torch.testing.assert_close(out["loss_task"], task_sum)  # eq. (8)
    torch.testing.assert_close(out["loss"].detach(), out["loss_con"] + 10.0 * out["loss_task"])
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in method.backbone.parameters())
    method.eval()  # BN on running statistics: features do not depend on the batch make-up
    with torch.no_grad():
        h = method.features(batch["views"])  # (N, M, D)
        for i, view in enumerate(batch["views"]):
            torch.testing.assert_close(h[:, i], pooled_features(method.backbone, view))
        con = pretext_contrastive(h, [0, 0, 1, 1], 0.07)
        torch.testing.assert_close(method.training_step(batch)["loss_con"], con)


def test_probe_lcon_splits_the_mtcl_loss_and_its_gradient() -> None:
    """benchmarks/probe_lcon.py: its two terms are the method's loss, their gradients its gradient."""
    spec = importlib.util.spec_from_file_location("probe_lcon", PROBE_LCON)
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    method = MTCL(tiny_backbone())
    batch = make_batch(method, clip_len=6)
    task_term, con, h = probe.loss_terms(method, batch)
    out = method.training_step(batch)
    torch.testing.assert_close(task_term + con, out["loss"])
    params = list(method.backbone.parameters())
    total = torch.autograd.grad(out["loss"], params)
    parts = torch.autograd.grad(task_term + con, params)
    for a, b in zip(total, parts, strict=True):
        torch.testing.assert_close(a, b)
    sim = probe.view_similarity(h.detach())  # (M, M)
    z = F.normalize(h.detach(), dim=-1)
    torch.testing.assert_close(sim[0, 2], (z[:, 0] * z[:, 2]).sum(-1).mean())
    torch.testing.assert_close(sim.diagonal(), torch.ones(4))
    values = probe.probe_batch(method, batch)
    assert set(values) == set(probe.COLUMNS) and all(math.isfinite(v) for v in values.values())
    assert values["L_con"] == pytest.approx(out["loss_con"].item(), rel=1e-5)


def test_mtcl_table1_variants() -> None:
    single = MTCL(tiny_backbone(), tasks=("jigsaw",), use_con=False)
    out = single.training_step(make_batch(single))
    assert "loss_con" not in out and len(make_batch(single, n=2)["views"]) == 1
    torch.testing.assert_close(out["loss"].detach(), 10.0 * out["loss_jigsaw"])
    pair = MTCL(tiny_backbone(), tasks=("jigsaw", "pace"))  # no positive pair: virtual positive
    out = pair.training_step(make_batch(pair))
    assert torch.isfinite(out["loss_con"]) and out["loss_con"] >= 0
    with pytest.raises(ValueError, match="method.use_con"):
        MTCL(tiny_backbone(), tasks=("pace", "order"))
    with pytest.raises(ValueError, match="method.tasks"):
        MTCL(tiny_backbone(), tasks=("pace", "shuffle"))
    with pytest.raises(ValueError, match="one view per task"):
        MTCL(tiny_backbone()).training_step(make_batch(pair))


def test_mtcl_loss_falls_with_attention_backbone() -> None:
    torch.manual_seed(0)
    backbone = r2plus1d_18_sta(width=0.125, attention="sa+ta", num_frames=6)
    method = MTCL(backbone, lambda_task=1.0)
    losses = fit(method, make_batch(method, n=6, clip_len=6), steps=8, lr=0.05)
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


# --- configs and the engine ---------------------------------------------------------------------


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register this module's methods, recipes and backbones (until the lead merges them)."""
    for name, cls in MY_METHODS.items():
        monkeypatch.setitem(METHODS, name, cls)
    for name, recipe in P.PRETEXT_RECIPES.items():
        monkeypatch.setitem(RECIPES, name, recipe)
    for name, factory in ATTENTION_BACKBONES.items():
        monkeypatch.setitem(BACKBONES, name, factory)


def test_configs_cover_the_tables() -> None:
    names = {p.stem for p in CONFIGS}
    assert sum(n.startswith("table2_exp") for n in names) == 15  # Exp. 2-16 (1 = scratch)
    assert sum(n.startswith("table3_") for n in names) == 16  # 4 schemes x 4 task sets
    assert sum(n.startswith("table1_") for n in names) == 14
    assert {n for n in names if n.startswith("table2_") and "exp" not in n} == {
        "table2_none",
        "table2_sa",
        "table2_ta",
        "table2_sa_ta",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_validates_and_matches_its_table_row(path: Path, registries: None) -> None:
    cfg = load_config(str(path), check=False)
    cfg.data.dataset, cfg.data.root, cfg.data.args = "synthetic", "", {}  # no data on CI
    validate(cfg)
    hp, parts = cfg.method.hparams, path.stem.split("_")
    if cfg.method.name == "cstp":
        switches = {"ctr": "lambda_ctr", "pb": "lambda_pcls", "rot": "lambda_rcls"}
        switches["stor"] = "lambda_ocls"
        assert {k for k, key in switches.items() if hp[key] > 0} == set(parts) & set(switches)
        if parts[0] == "table3":
            assert hp["contrastive"] == parts[1]
        expected_ctr = 1.0 if parts[-1] == "ctr" else 0.1 if "ctr" in parts else 0.0
        assert hp["lambda_ctr"] == expected_ctr
    else:
        abbr = {"tp": "pace", "to": "order", "sr": "rotation", "sj": "jigsaw"}
        if parts[0] == "table1":
            tasks = set(abbr.values()) if "all" in parts else {abbr[p] for p in parts if p in abbr}
            assert set(hp["tasks"]) == tasks and hp["use_con"] == ("con" in parts)
        else:
            assert len(hp["tasks"]) == 4 and hp["use_con"]
            backbone = {"none": "r2plus1d_18", "sa": "r2plus1d_18_sa", "ta": "r2plus1d_18_ta"}
            assert cfg.model.backbone == {**backbone, "sa_ta": "r2plus1d_18_sta"}[path.stem[7:]]
        assert cfg.data.clip_len == 9 and hp["lambda_task"] == 10.0 and hp["temperature"] == 0.07
    backbone = create_backbone(cfg.model.backbone, width=0.125)
    METHODS[cfg.method.name](backbone, **hp)  # the paper-size heads build


def test_paper_configs_ask_for_the_data_folder(registries: None) -> None:
    with pytest.raises(ConfigError, match="data.root"):
        load_config(str(REPO / "configs/cstp/table2_exp16_ctr_pb_rot_stor.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "clip_len", "extra"),
    [
        ("cstp/table3_moco_ctr_pb_rot_stor.yaml", 5, {"hidden_dim": 32, "queue_size": 64}),
        ("mtcl/table2_sa_ta.yaml", 9, None),
    ],
)
def test_pretrain_cli_runs_a_config(
    config: str, clip_len: int, extra: dict[str, Any] | None, tmp_path: Path, registries: None
) -> None:
    from vidssl.app.cli import main

    raw = yaml.safe_load((REPO / "configs" / config).read_text())
    raw["data"] = {
        "dataset": "synthetic",
        "args": {"num_videos": 12, "frames": 24, "size": 24},
        "clip_len": clip_len,
        "stride": 1.0,
        "size": 16,
        "batch_size": 4,
        "workers": 0,
    }
    raw["model"]["width"] = 0.125
    if extra:
        raw["method"]["contrastive_kwargs"] = {**raw["method"]["contrastive_kwargs"], **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    overrides = ["train.max_steps=2", f"train.out_dir={out}", "train.device=cpu"]
    overrides += ["train.amp=none", "train.channels_last=false", "train.log_every=1"]
    assert main(["pretrain", "--config", str(path), *overrides]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == 2 and all(math.isfinite(r["loss"]) for r in steps)
    keys = {"loss_ctr", "loss_ocls", "acc_overlap_s"} if "cstp" in config else {"loss_con"}
    assert keys <= set(steps[0])
    assert (out / "last.pt").is_file()
