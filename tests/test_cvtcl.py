"""CVTCL: losses vs explicit references, top-K mining, alternation, two-stream alignment, e2e."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidssl.data.two_stream import OnTheFlyFlow, TwoStreamSubClips
from vidssl.losses import moco_loss
from vidssl.losses.cvtcl import (
    indices_to_mask,
    local_loss,
    local_temporal_loss,
    multi_instance_nce,
    topk_neighbours,
)
from vidssl.methods.cvtcl import CVTCL
from vidssl.models.backbones import create_backbone
from vidssl.models.backbones.base import pooled_features

T = 0.1


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def _nce(q: torch.Tensor, pos: list[torch.Tensor], neg: list[torch.Tensor]) -> float:
    """-log(sum_pos exp(q.p/t) / (sum_pos + sum_neg)), explicit loops."""
    num = sum(math.exp(float(q @ p) / T) for p in pos)
    den = num + sum(math.exp(float(q @ n) / T) for n in neg)
    return -math.log(num / den)


def test_local_loss_matches_eq6_reference() -> None:
    q, keys, queue = _unit(3, 8), _unit(3, 4, 8, seed=1), _unit(5, 8, seed=2)
    exclude = torch.zeros(3, 5, dtype=torch.bool)
    exclude[1, 2] = True
    ref = np.mean(
        [
            np.mean(
                [
                    _nce(q[i], [keys[i, p]], [queue[j] for j in range(5) if not exclude[i, j]])
                    for p in range(4)
                ]
            )
            for i in range(3)
        ]
    )
    got = local_loss(q, keys, queue, T, exclude=exclude)
    assert got.item() == pytest.approx(ref, rel=1e-5)


def test_local_temporal_loss_matches_eq7_reference() -> None:
    q, keys = _unit(3, 8), _unit(3, 4, 8, seed=1)
    ref = np.mean([_nce(q[i], [keys[i, 0]], [keys[i, j] for j in (1, 2, 3)]) for i in range(3)])
    got = local_temporal_loss(q, keys[:, 0], keys[:, 1:], T)
    assert got.item() == pytest.approx(ref, rel=1e-5)


def test_multi_instance_nce_matches_reference_and_moco() -> None:
    q, k, memory = _unit(3, 8), _unit(3, 8, seed=1), _unit(6, 8, seed=2)
    pos = torch.zeros(3, 6, dtype=torch.bool)
    pos[0, [1, 4]] = True
    pos[2, 5] = True
    exclude = torch.zeros(3, 6, dtype=torch.bool)
    exclude[1, 0] = True
    ref = np.mean(
        [
            _nce(
                q[i],
                [k[i]] + [memory[j] for j in range(6) if pos[i, j]],
                [memory[j] for j in range(6) if not pos[i, j] and not exclude[i, j]],
            )
            for i in range(3)
        ]
    )
    assert multi_instance_nce(q, k, memory, pos, T, exclude).item() == pytest.approx(ref, rel=1e-5)
    none = torch.zeros(3, 6, dtype=torch.bool)
    assert torch.allclose(multi_instance_nce(q, k, memory, none, T), moco_loss(q, k, memory, T))


def test_topk_returns_true_neighbours_and_excludes_own_video() -> None:
    memory = _unit(20, 8, seed=3)
    query = memory[[2, 7]] + 0.01 * _unit(2, 8, seed=4)  # each query is near its own entry
    own = torch.zeros(2, 20, dtype=torch.bool)
    own[0, 2] = own[1, 7] = True  # the query's own video, as CoCLR: never a mined positive
    got = topk_neighbours(query, memory, 5, exclude=own)
    sims = F.normalize(query, dim=1) @ memory.T
    for i in range(2):
        order = [j for j in sims[i].argsort(descending=True).tolist() if not own[i, j]][:5]
        assert set(got[i].tolist()) == set(order)
        assert not own[i, got[i]].any()
    assert indices_to_mask(got, 20).sum().item() == 10
    assert topk_neighbours(query, memory, 0).shape == (2, 0)


def _method(**kw: Any) -> CVTCL:
    torch.manual_seed(0)
    backbone = create_backbone("r3d_18", width=0.125)
    args = dict(flow_backbone="r3d_18", flow_width=0.125, queue_size=16, hidden_dim=32, out_dim=16)
    return CVTCL(backbone, **{**args, **kw})


def _batch(n: int = 4, seed: int = 0, index: torch.Tensor | None = None) -> dict[str, Any]:
    """g, g^a (8 frames), s1..s4, s1^a (4 frames) in both streams."""
    g = torch.Generator().manual_seed(seed)

    def views(c: int) -> list[torch.Tensor]:
        return [torch.randn(n, c, 8 if j < 2 else 4, 16, 16, generator=g) for j in range(7)]

    index = torch.arange(n) + seed * n if index is None else index
    return {"views": views(3), "flow_views": views(2), "item": index}


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_cotrain_step_updates_only_the_trained_stream() -> None:
    m = _method(stage="cotrain", topk=2, cycles=1)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for s in range(2):  # fill the memory so that mining has candidates
        m.training_step(_batch(seed=s))
    before = {"rgb": _params(m.rgb), "flow": _params(m.flow)}
    for step, progress in enumerate((0.25, 0.4)):  # first half: RGB trained, flow frozen
        opt.zero_grad(set_to_none=True)
        out = m.training_step(_batch(seed=step))
        out["loss"].backward()
        opt.step()
        m.on_after_optimizer_step(progress)
    after = {"rgb": _params(m.rgb), "flow": _params(m.flow)}
    assert all(torch.equal(before["flow"][k], after["flow"][k]) for k in before["flow"])
    assert any(not torch.equal(before["rgb"][k], after["rgb"][k]) for k in before["rgb"])
    assert all(p.grad is None for p in m.flow.parameters())
    m.on_after_optimizer_step(0.6)  # second half: flow trained, RGB frozen
    assert int(m.active) == 1
    assert not any(p.requires_grad for p in m.rgb.backbone.parameters())
    assert all(p.requires_grad for p in m.flow.backbone.parameters())


def test_init_loss_falls_on_a_tiny_batch() -> None:
    m = _method(momentum=0.9)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    batch, losses = _batch(), []
    for i in range(12):
        out = m.training_step(batch)
        assert torch.isfinite(out["loss"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        m.on_after_optimizer_step(i / 12)
        losses.append(out["loss"].item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


class _RampVideo:
    """RGB frame t: R = 8 x, G = 4 y + 8 t, B = 0 (uint8); 12 frames of 24 x 32."""

    path, fps, num_frames = "ramp", 25.0, 12

    def get_frames(self, indices: Any) -> np.ndarray:
        t = np.asarray(indices).reshape(-1, 1, 1)
        y, x = np.mgrid[0:24, 0:32]
        out = np.zeros((t.shape[0], 24, 32, 3), np.uint8)
        out[..., 0] = 8 * x
        out[..., 1] = 4 * y + 8 * t
        return out

    def close(self) -> None:
        pass


def _ramp_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """A fake FlowFn: x flow = R ramp of ``prev`` (x / 4 px), y flow = its grey level / 64."""
    y, x = np.mgrid[0 : prev.shape[1], 0 : prev.shape[2]]
    fx = np.broadcast_to(x / 4.0, prev.shape)
    return np.stack([fx, prev / 64.0], axis=-1).astype(np.float32)  # (N, H, W, 2)


def test_two_stream_views_share_frames_crop_and_flip() -> None:
    video = _RampVideo()
    flow = OnTheFlyFlow(video, _ramp_flow, "fake", bound=20.0)
    # flow frame i is computed from frames (i, i + 1); the last one repeats frame N - 2
    q = flow.get_frames([0, 5, 11])
    assert np.array_equal(q[2], flow.get_frames([10])[0])
    recipe = TwoStreamSubClips(
        clip_len=8, stride=1, sub_len=2, size=8, jitter_strength=0.0, p_gray=0.0, flow_scale=100.0
    )
    recipe.open_flow = lambda v: OnTheFlyFlow(v, _ramp_flow, "fake", 20.0)  # type: ignore[method-assign]
    flips = set()
    for seed in range(6):
        sample = recipe(video, np.random.default_rng(seed))
        for rgb, flo in zip(sample["views"], sample["flow_views"], strict=True):
            red = rgb[0] * 0.225 + 0.45  # (T, s, s) in [0, 1]: 8 x / 255
            grey_x = red * 255 / 8  # the source x coordinate of every output pixel
            fx = flo[0] * 100.0  # flow x in pixels = +-(x / 4) at the same source pixel
            flipped = bool(grey_x[0, 0, 0] > grey_x[0, 0, -1])
            flips.add(flipped)
            sign = -1.0 if flipped else 1.0
            assert torch.allclose(fx, sign * grey_x / 4.0, atol=0.1)  # same crop, same flip
            assert (flo.abs() <= 1).all() and flo.shape == (2, rgb.shape[1], 8, 8)
    assert flips == {True, False}


def test_two_stream_flow_frames_follow_rgb_frames() -> None:
    video = _RampVideo()
    recipe = TwoStreamSubClips(
        clip_len=8, stride=1, sub_len=2, size=8, train=False, flow_scale=100.0
    )
    recipe.open_flow = lambda v: OnTheFlyFlow(v, _ramp_flow, "fake", 20.0)  # type: ignore[method-assign]
    sample = recipe(video, np.random.default_rng(0))
    for rgb, flo in zip(sample["views"], sample["flow_views"], strict=True):
        green = (rgb[1] * 0.225 + 0.45) * 255  # 4 y + 8 t
        grey = (rgb * 0.225 + 0.45) * 255
        lum = 0.299 * grey[0] + 0.587 * grey[1] + 0.114 * grey[2]  # (T, s, s)
        fy = flo[1] * 100.0  # grey level of frame t / 64
        assert torch.allclose(fy, lum / 64.0, atol=0.2)
        assert green.mean() > 0


def test_pretrain_two_stages_then_eval_both_streams(tmp_path: Path) -> None:
    from vidssl.app.cli import main

    common = [
        "data.args.num_videos=16",
        "data.args.frames=16",
        "data.args.size=16",
        "data.clip_len=16",  # the global clip; four sub-clips of 4 frames inside it
        "data.recipe.sub_len=4",
        "data.size=16",
        "data.batch_size=4",
        "data.workers=0",
        "model.backbone=r3d_18",
        "method.flow_backbone=r3d_18",
        "method.queue_size=12",
        "method.hidden_dim=32",
        "method.out_dim=16",
        "train.max_steps=2",
        "train.amp=none",
    ]
    cfg = Path(__file__).resolve().parents[1] / "configs" / "cvtcl"
    init, co = tmp_path / "init", tmp_path / "co"
    assert (
        main(["pretrain", "--config", str(cfg / "init.yaml"), f"train.out_dir={init}", *common])
        == 0
    )
    args = [f"train.out_dir={co}", f"method.init_checkpoint={init / 'last.pt'}", *common]
    assert main(["pretrain", "--config", str(cfg / "cotrain.yaml"), *args]) == 0
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--checkpoint",
                str(co / "last.pt"),
                "--stream",
                "both",
                "--data",
                "synthetic",
                "--out",
                str(tmp_path / "ev"),
                "num_clips=1",
                "data.num_videos=16",
                "data.frames=16",
                "data.size=16",
                "clip_len=4",
                "size=16",
            ]
        )
        == 0
    )
    assert list((tmp_path / "ev" / "eval").glob("retrieval-*.json"))


# ---- the global clip and its sub-clips (sec. 2.1, 2.3, 3.2)


def test_global_clip_span_and_sub_clips_inside_it() -> None:
    from vidssl.data.samplers import clip_with_sub_clips

    starts = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        clip, subs = clip_with_sub_clips(40, 8, 4.0, 4, 8, 1.0, rng)  # span 32 of 40 frames
        start = int(clip[0])
        starts.add(start)
        assert 0 <= start <= 8 and np.array_equal(clip, start + 4 * np.arange(8))
        assert subs.shape == (4, 8) and (subs >= start).all() and (subs < start + 32).all()
        assert (np.diff(subs, axis=1) == 1).all()  # each sub-clip: 8 consecutive frames
        assert (subs[1:, 0] > subs[:-1, -1]).all()  # ordered, non-overlapping
    assert len(starts) > 1
    # the paper's layout: 32 frames at stride 1 tiled by four 8-frame sub-clips
    clip, subs = clip_with_sub_clips(50, 32, 1.0, 4, 8, 1.0, np.random.default_rng(0))
    assert np.array_equal(subs, clip.reshape(4, 8))
    with pytest.raises(ValueError, match="needs 32"):  # never looped past the end
        clip_with_sub_clips(31, 32, 1.0, 4, 8, 1.0, np.random.default_rng(0))


class _ValueVideo:
    """Frame t is uniformly grey with value 4 t (uint8): a view's pixels name its frames."""

    fps = 25.0

    def __init__(self, num_frames: int, path: str = "v") -> None:
        self.num_frames, self.path = num_frames, path

    def get_frames(self, indices: Any) -> np.ndarray:
        t = np.asarray(indices).reshape(-1, 1, 1, 1)
        return np.broadcast_to(4 * t, (t.shape[0], 12, 12, 3)).astype(np.uint8)

    def close(self) -> None:
        pass


def _frames_of(view: torch.Tensor) -> list[int]:
    """(3, T, s, s) normalised grey view -> the frame index t of every time step."""
    from vidssl.data.transforms import KINETICS_MEAN, KINETICS_STD

    grey = view[0, :, 0, 0] * KINETICS_STD[0] + KINETICS_MEAN[0]  # (T,) in [0, 1]
    return [round(v) for v in (grey * 255 / 4).tolist()]


def _zero_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return np.zeros((*prev.shape, 2), np.float32)


def test_recipe_views_are_the_global_clip_and_sub_clips_inside_it() -> None:
    recipe = TwoStreamSubClips(clip_len=8, stride=4, sub_len=4, sub_stride=2, size=8, train=False)
    recipe.open_flow = lambda v: OnTheFlyFlow(v, _zero_flow, "fake", 20.0)  # type: ignore[method-assign]
    for seed in range(5):
        sample = recipe(_ValueVideo(45), np.random.default_rng(seed))
        views = [_frames_of(v) for v in sample["views"]]
        assert len(views) == 7 and len(sample["flow_views"]) == 7
        g, g_a, *subs, s1_a = views
        start = g[0]
        assert g == g_a == [start + 4 * i for i in range(8)] and start + 32 <= 45
        assert s1_a == subs[0]
        for s in subs:  # 4 frames at stride 2, inside the global clip's 32-frame span
            assert s == [s[0] + 2 * i for i in range(4)] and start <= s[0] and s[-1] < start + 32
        assert all(a[-1] < b[0] for a, b in zip(subs, subs[1:], strict=False))
    with pytest.raises(ValueError, match="do not fit"):
        TwoStreamSubClips(clip_len=8, stride=1, sub_len=4)
    with pytest.raises(ValueError, match="never pads"):
        TwoStreamSubClips(clip_len=8, stride=1, sub_len=2, short="clamp")


def test_too_short_video_is_skipped_and_counted_not_looped() -> None:
    from vidssl.data.datasets import VideoDataset
    from vidssl.data.layouts import DatasetIndex, VideoItem

    videos = {"short": _ValueVideo(20, "short"), "long": _ValueVideo(40, "long")}
    index = DatasetIndex([VideoItem("short", 0, {}), VideoItem("long", 1, {})], ["a", "b"])
    recipe = TwoStreamSubClips(clip_len=32, stride=1, sub_len=8, size=8, train=False)
    recipe.open_flow = lambda v: OnTheFlyFlow(v, _zero_flow, "fake", 20.0)  # type: ignore[method-assign]
    ds = VideoDataset(index, recipe, opener=videos.__getitem__)
    sample = ds[0]  # the 20-frame video cannot hold the 32-frame clip: replaced, counted
    assert sample["skipped"] == 1 and sample["label"] == 1 and ds.skipped_count == 1
    assert max(_frames_of(sample["views"][0])) < 40
    assert ds[1]["skipped"] == 0


# ---- eq. 1 in the init stage is plain MoCo


def _plain_moco_reference(m: CVTCL, batch: dict[str, Any]) -> float:
    """Sum over the streams of eq. 1 written out: positive g^a, every queue row negative."""
    total = 0.0
    with torch.no_grad():
        for name, s in m.streams().items():
            g, g_a = batch[{"rgb": "views", "flow": "flow_views"}[name]][:2]
            q = F.normalize(s.projector(pooled_features(s.backbone, g)), dim=1)
            k = s.keys(g_a)
            queue = s.queue.clone()
            total += float(np.mean([_nce(q[i], [k[i]], list(queue)) for i in range(4)]))
    return total


def test_init_nce_is_plain_moco_without_own_video_positives() -> None:
    m = _method(use_local=False, use_lt=False, temperature=T)
    same = torch.tensor([0, 1, 2, 3])
    for s in range(3):  # the queue now holds keys of the very videos of the next batch
        m.training_step(_batch(seed=s, index=same))
    assert (m.queue_index[:, None] == same[None, :]).any(dim=0).all()
    batch = _batch(seed=5, index=same)
    ref = _plain_moco_reference(m, batch)
    out = m.training_step(batch)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-4)
    assert set(out) == {"loss", "rgb_nce", "flow_nce"}


# ---- co-training start (CoCLR's choices)


def _perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_cotrain_start_copies_query_into_key_encoder_and_refills_memory(tmp_path: Path) -> None:
    init = _method()
    for s in range(2):
        init.training_step(_batch(seed=s))
    _perturb(init.rgb.key_backbone)  # a momentum encoder that differs from the query encoder
    _perturb(init.flow.key_projector)
    torch.save({"model": init.state_dict()}, tmp_path / "init.pt")
    m = _method(stage="cotrain", init_checkpoint=str(tmp_path / "init.pt"), cycles=1)
    assert _same(m.rgb.backbone, init.rgb.backbone)
    assert _same(m.rgb.key_backbone, m.rgb.backbone) and _same(m.rgb.key_projector, m.rgb.projector)
    assert (m.queue_index == -1).all() and int(m.rgb.queue_ptr) == int(m.flow.queue_ptr) == 0
    assert not _same(m.flow.key_projector, m.flow.projector)  # flow is not trained yet
    m.on_after_optimizer_step(0.6)  # second half: flow trained from here, memory refilled
    assert int(m.active) == 1 and (m.queue_index == -1).all()
    assert _same(m.flow.key_projector, m.flow.projector)


def test_cotrain_miner_is_the_frozen_query_encoder_in_eval_mode() -> None:
    m = _method(stage="cotrain", queue_size=8, topk=2)
    m.train()
    logs = [m.training_step(_batch(seed=s)) for s in range(2)]  # 2 x 4 rows: memory full
    assert [float(o["memory_full"]) for o in logs] == [0.0, 0.0]
    batch = _batch(seed=2)
    out = m.training_step(batch)
    assert float(out["memory_full"]) == 1.0 and m.flow.backbone.training
    written = m.flow.queue[:4]  # rows 0..3: the pointer had wrapped around
    with torch.no_grad():
        m.flow.eval()
        g_a = batch["flow_views"][1]
        eval_z = F.normalize(m.flow.projector(pooled_features(m.flow_backbone, g_a)), dim=1)
        m.flow.train()
        train_z = F.normalize(m.flow.projector(pooled_features(m.flow_backbone, g_a)), dim=1)
    assert torch.allclose(written, eval_z, atol=1e-5)
    assert not torch.allclose(written, train_z, atol=1e-3)


# ---- checkpoints: one copy of each backbone


def _shared_storage(state: dict[str, torch.Tensor]) -> int:
    """Entries whose storage another entry already uses."""
    ptrs = [v.untyped_storage().data_ptr() for v in state.values() if v.numel()]
    return len(ptrs) - len(set(ptrs))


def test_checkpoint_holds_each_backbone_once_and_old_files_load(tmp_path: Path) -> None:
    m = _method()
    m.training_step(_batch())
    state = m.state_dict()
    assert not [k for k in state if k.startswith(("rgb.backbone.", "flow.backbone."))]
    assert any(k.startswith("backbone.") for k in state)
    assert any(k.startswith("flow_backbone.") for k in state)
    torch.save({"model": state}, tmp_path / "new.pt")
    new = torch.load(tmp_path / "new.pt", weights_only=True)["model"]
    assert _shared_storage(new) == 0 and list(new) == list(state)
    old = torch.nn.Module.state_dict(m)  # the previous format: both names of each backbone
    assert _shared_storage(old) > 0 and len(old) > len(state)
    torch.save({"model": old}, tmp_path / "old.pt")
    for path in ("new.pt", "old.pt"):
        fresh = CVTCL(
            create_backbone("r3d_18", width=0.125),
            flow_backbone="r3d_18",
            flow_width=0.125,
            queue_size=16,
            hidden_dim=32,
            out_dim=16,
        )
        fresh.load_state_dict(torch.load(tmp_path / path, weights_only=True)["model"])
        assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items()), path
        assert torch.equal(fresh.rgb.backbone.stem[0].weight, m.backbone.stem[0].weight)
    co = _method(stage="cotrain", init_checkpoint=str(tmp_path / "old.pt"))
    assert _same(co.flow.backbone, m.flow.backbone)
