"""Video backbones: every registered name trains, and the torchvision layouts match exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.app.train.precision import model_to_channels_last
from vidssl.models.backbones import BACKBONES, create_backbone, list_backbones
from vidssl.models.backbones.base import TemporalConv3d, pooled_features
from vidssl.models.backbones.resnet3d import r2plus1d_18, r2plus1d_midplanes

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "torchvision_video_models.json"
TORCHVISION = json.loads(FIXTURE.read_text())["models"]
NAMES = list_backbones()
TINY = 0.25  # width for the fast tests
CLIP = (2, 3, 8, 32, 32)  # (N, C, T, H, W)


pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Copy of `tools/dump_torchvision_video_models.py::synthetic_state_dict` (keep in sync)."""
    out: dict[str, Tensor] = {}
    for j, (key, ref) in enumerate(model.state_dict().items()):
        period = torch.sin(0.61 * torch.arange(1009, dtype=torch.float64) + 0.37 * j).float()
        s = period.repeat(ref.numel() // 1009 + 1)[: ref.numel()]  # a sine, period 1009 elements
        if key.endswith("num_batches_tracked"):
            v = torch.zeros(())
        elif key.endswith("running_var"):
            v = 1.0 + 0.5 * s.abs()
        elif key.endswith("running_mean"):
            v = 0.1 * s
        elif ref.ndim > 1:
            v = s * (4.0 / ref[0].numel()) ** 0.5
        elif key.endswith("weight"):
            v = 1.0 + 0.1 * s
        else:
            v = 0.1 * s
        out[key] = v.reshape(ref.shape).to(ref.dtype)
    return out


def synthetic_input(shape: tuple[int, ...]) -> Tensor:
    """Copy of the tool's `synthetic_input`."""
    n = 1
    for d in shape:
        n *= d
    return torch.sin(0.013 * torch.arange(n, dtype=torch.float64) ** 1.1).reshape(shape).float()


def test_registry_names_and_unknown_name_error():
    assert NAMES == sorted(BACKBONES)
    assert set(NAMES) == {
        "c3d",
        "r2plus1d_18",
        "r2plus1d_18_sa",
        "r2plus1d_18_sta",
        "r2plus1d_18_ta",
        "r3d_18",
        "r3d_50",
        "s3d",
        "vit_clip",
    }
    with pytest.raises(ValueError, match="unknown backbone 'r3d_19'.*r2plus1d_18.*r3d_18"):
        create_backbone("r3d_19")


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_no_nan(name: str):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=0, width=TINY)
    x = torch.randn(CLIP)
    feats = pooled_features(model, x)
    assert feats.shape == (2, model.feature_dim)
    out = model(x)
    assert out.shape == (2, model.feature_dim)  # num_classes == 0: head is the identity
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier_and_feature_map(name: str):
    torch.manual_seed(0)
    model = create_backbone(name, width=0.125).eval()
    x = torch.randn(CLIP)
    model.reset_classifier(5)
    assert model.num_classes == 5
    with torch.no_grad():
        logits = model(x)
        fmap = model.forward_features(x)
        feats = model.pool_features(fmap)
        assert logits.shape == (2, 5)
        assert fmap.ndim == 5 and fmap.shape[0] == 2
        torch.testing.assert_close(model.forward_head(fmap), logits)
        torch.testing.assert_close(model.logits(feats), logits)
    model.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), feats)
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


def _reference_pool(name: str, model: nn.Module, fmap: Tensor, x: Tensor) -> Tensor:
    """The pooled features written out by hand per backbone family: global average pooling,
    C3D's GAP -> fc6 -> fc7, the ViT's video embedding v (eq. 12) of ``forward_tokens``."""
    if name == "c3d":
        return model.fc7(model.fc6(fmap.mean(dim=(2, 3, 4))))
    if name == "vit_clip":
        return model.forward_tokens(x).video
    return fmap.mean(dim=(2, 3, 4))


@pytest.mark.parametrize("name", NAMES)
def test_timm_method_meanings(name: str):
    """forward_features is the unpooled map, forward_head(.., pre_logits=True) the pooled
    features, forward = forward_head(forward_features)."""
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=5, width=0.125).eval()
    x = torch.randn(CLIP)
    with torch.no_grad():
        fmap = model.forward_features(x)
        assert fmap.ndim == 5 and fmap.shape[0] == CLIP[0]
        feats = model.forward_head(fmap, pre_logits=True)
        assert feats.shape == (CLIP[0], model.feature_dim)
        torch.testing.assert_close(feats, _reference_pool(name, model, fmap, x))
        torch.testing.assert_close(pooled_features(model, x), feats)
        logits = model.forward_head(fmap)
        assert logits.shape == (CLIP[0], 5)
        torch.testing.assert_close(model(x), logits)


@pytest.mark.parametrize("name", NAMES)
def test_feature_map_gets_gradient_for_grad_cam(name: str):
    model = create_backbone(name, num_classes=3, width=0.125)
    fmap = model.forward_features(torch.randn(CLIP))
    fmap.retain_grad()
    model.forward_head(fmap)[:, 1].sum().backward()
    assert fmap.grad is not None and fmap.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "s3d"])
def test_torchvision_layout_and_parameter_count(name: str):
    ref = TORCHVISION[name]
    model = create_backbone(name, num_classes=400)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes) == list(ref["state_dict"])  # same keys, same order
    assert shapes == ref["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "s3d"])
def test_torchvision_state_dict_loads_strict_and_matches_logits(name: str):
    ref = TORCHVISION[name]
    model = create_backbone(name, num_classes=400).eval()
    # a random checkpoint built only from torchvision's key names and shapes
    ckpt = {
        k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s)
        for k, s in ref["state_dict"].items()
    }
    model.load_state_dict(ckpt, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt[k]), k
    # deterministic weights, same forward as torchvision's on the same input
    model.load_state_dict(synthetic_state_dict(model), strict=True)
    with torch.no_grad():
        logits = model(synthetic_input(tuple(ref["reference_input"])))
    expected = torch.tensor(ref["reference_logits"]).unsqueeze(0)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_width_changes_shapes_not_keys(name: str):
    full = create_backbone(name, num_classes=10).state_dict()
    tiny = create_backbone(name, num_classes=10, width=TINY).state_dict()
    assert list(full) == list(tiny)
    assert sum(v.numel() for v in tiny.values()) < sum(v.numel() for v in full.values()) / 8
    with pytest.raises(ValueError, match="width"):
        create_backbone(name, width=0.0)


def test_r2plus1d_midplanes_formula():
    # (in*out*3*3*3) // (in*3*3 + 3*out), by hand
    assert r2plus1d_midplanes(64, 64) == 144  # 110592 // 768
    assert r2plus1d_midplanes(64, 128) == 230  # 221184 // 960
    assert r2plus1d_midplanes(128, 128) == 288  # 442368 // 1536
    sd = r2plus1d_18(width=1.0).state_dict()
    # torchvision reuses the first block's (in, out) mid-planes for the block's second conv
    assert sd["layer2.0.conv1.0.0.weight"].shape == (230, 64, 1, 3, 3)
    assert sd["layer2.0.conv2.0.0.weight"].shape == (230, 128, 1, 3, 3)


def test_block_extra_hook_inserts_a_module_per_block():
    calls: list[tuple[int, int]] = []
    seen: list[tuple[int, ...]] = []

    def extra(channels: int, stage: int) -> nn.Module:
        calls.append((channels, stage))
        module = nn.Conv3d(channels, channels, 1)
        module.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
        return module

    model = r2plus1d_18(width=0.125, block_extra=extra)
    assert calls == [(c, s) for s, c in enumerate((8, 16, 32, 64), start=1) for _ in range(2)]
    assert "layer1.0.extra.weight" in model.state_dict()
    model(torch.randn(CLIP))
    assert [shape[1] for shape in seen] == [8, 8, 16, 16, 32, 32, 64, 64]
    plain = r2plus1d_18(width=0.125).state_dict()
    assert not any("extra" in k for k in plain)


@pytest.mark.parametrize("name", NAMES)
def test_input_checks_and_minimum_size(name: str):
    model = create_backbone(name, width=0.125, in_channels=2).eval()
    t, h, w = model.min_input_size
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 2, t, h, w))).all()
    with pytest.raises(ValueError, match=r"expects clips \(N, 2, T, H, W\)"):
        model(torch.randn(1, 3, t, h, w))
    if (t, h, w) != (1, 1, 1):
        with pytest.raises(ValueError, match="needs"):
            model(torch.randn(1, 2, t - 1, h, w))
        with pytest.raises(ValueError, match="needs"):
            model(torch.randn(1, 2, t, h, w - 1))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_3d_matches_contiguous(name: str):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=4, width=0.125).eval()
    x = torch.randn(CLIP)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last_3d)
        got = model(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_channels_last_is_finite(name: str):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=4, width=0.125)
    model = model.to(memory_format=torch.channels_last_3d)
    x = torch.randn(CLIP).contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    out.float().logsumexp(dim=1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("channels_last", [False, True])
def test_temporal_conv3d_equals_conv3d(channels_last: bool):
    torch.manual_seed(0)
    conv = TemporalConv3d(6, 5, kt=3, stride=2, bias=True)
    x = torch.randn(2, 6, 7, 5, 4, requires_grad=True)
    xin = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
    got = conv(xin)
    expected = F.conv3d(x, conv.weight, conv.bias, stride=(2, 1, 1), padding=(1, 0, 0))
    torch.testing.assert_close(got, expected)
    grads = torch.autograd.grad(got.sin().sum(), (x, conv.weight, conv.bias))
    ref = torch.autograd.grad(expected.sin().sum(), (x, conv.weight, conv.bias))
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_factorised_convs_bf16_gradients_match_fp32(frames: int):
    """bf16 weight/input gradients of R(2+1)D's convs track fp32 at small T (channels_last_3d).

    `guard_bf16_conv3d` leaves them alone (the 1x3x3 conv has kernel depth 1; TemporalConv3d is
    a Conv2d call), so the oneDNN defect it works around (garbage bf16 weight gradients of a
    Conv3d with temporal padding when 1 < T < kernel depth) must not hit them: R(2+1)D-18 runs
    its layer3/layer4 temporal convs on T = 2 for 8-frame clips. Tolerance: bf16 rounding of
    the inputs and grad_output gives ~0.5% relative error; the defect gives NaN / 1e38.
    """
    torch.manual_seed(0)
    spatial = nn.Conv3d(16, 16, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
    for conv in (spatial, TemporalConv3d(16, 16, 3), TemporalConv3d(16, 16, 3, stride=2)):
        model_to_channels_last(conv)
        x = torch.randn(4, 16, frames, 4, 4).contiguous(memory_format=torch.channels_last_3d)
        x.requires_grad_()
        y = conv(x)
        gy = torch.randn(y.shape).contiguous(memory_format=torch.channels_last_3d)
        ref = torch.autograd.grad(y, (conv.weight, x), gy)
        for _ in range(3):  # the defect gave different garbage on every call
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y16 = conv(x)
            assert y16.dtype == torch.bfloat16
            grads = torch.autograd.grad(y16, (conv.weight, x), gy.to(y16.dtype))
            for g, r in zip(grads, ref):
                assert (g.float() - r).norm() / r.norm() < 2e-2


def test_c3d_options():
    x = torch.randn(CLIP)
    pooled = create_backbone("c3d", width=0.125, hidden_fc=False).eval()
    assert pooled.feature_dim == 64  # conv5b: 512 x 0.125
    assert not any(k.startswith(("fc6", "fc7")) for k in pooled.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(pooled(x), pooled.forward_features(x).mean(dim=(2, 3, 4)))
    no_bn = create_backbone("c3d", width=0.125, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in no_bn.modules())
    assert torch.isfinite(no_bn(x)).all()


SMALL_STEM_NAMES = ["r3d_18", "r2plus1d_18", "r3d_50", "r2plus1d_18_sta"]


@pytest.mark.parametrize("name", SMALL_STEM_NAMES)
def test_small_stem_keeps_keys_and_skips_the_spatial_downsampling(name: str):
    default = create_backbone(name, width=0.125)
    small = create_backbone(name, width=0.125, stem="small")
    assert list(default.state_dict()) == list(small.state_dict())  # same module names
    assert default.state_dict()["stem.0.weight"].shape[-2:] == (7, 7)
    assert small.state_dict()["stem.0.weight"].shape[-2:] == (3, 3)
    x = torch.randn(2, 3, 8 if name != "r2plus1d_18_sta" else 9, 32, 32)  # MTCL: 9 frames
    with torch.no_grad():
        maps = [m.eval().forward_features(x).shape for m in (default, small)]
    # R3D-18 / R(2+1)D-18 stems halve 32 px (R3D-50's also max-pools: a quarter); small: none
    factor = 4 if name == "r3d_50" else 2
    assert maps[1][:3] == maps[0][:3] and maps[1][-1] == factor * maps[0][-1]
    small.train()
    out = small(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and small.stem[0].weight.grad is not None
    with pytest.raises(ValueError, match="model.args.stem"):
        create_backbone(name, width=0.125, stem="tiny")
