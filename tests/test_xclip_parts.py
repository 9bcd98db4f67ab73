"""The language-video method's parts: pinned state-dict layout (checkpoints written before the
split into ``xclip_text`` / ``xclip_stages`` / ``xclip_loss`` still load), the class-text
table, the Sec. 4.2 learning-rate groups and stage-2 init, and the eq. (22) objective."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.losses.video_text import video_text_contrastive
from vidssl.methods.xclip import XCLIP
from vidssl.methods.xclip_loss import language_video_loss
from vidssl.methods.xclip_stages import load_init_checkpoint, lr_group
from vidssl.models.backbones.clip_video import VideoTokens, vit_clip
from vidssl.models.cov_pool import AuxHead
from vidssl.text import TEXT_ENCODERS

CLASSES = ["archery", "bowling", "cooking pasta", "playing guitar"]


class CharEncoder(nn.Module):
    """Tiny offline text encoder: character ids (0 = padding) -> mean embedding -> linear."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.output_dim = dim
        self.embed = nn.Embedding(64, dim, padding_idx=0)
        self.out = nn.Linear(dim, dim)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        ids = torch.zeros(len(texts), max(map(len, texts)), dtype=torch.long)  # (K, L)
        for i, text in enumerate(texts):
            ids[i, : len(text)] = torch.tensor([ord(c) % 63 + 1 for c in text])
        return ids

    def forward(self, tokens: Tensor) -> Tensor:
        mask = (tokens > 0).float().unsqueeze(-1)  # (K, L, 1)
        return self.out((self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0))


@pytest.fixture(autouse=True)
def chars_encoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(TEXT_ENCODERS, "chars", CharEncoder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(temporal: str = "tws", **kwargs: object) -> XCLIP:
    torch.manual_seed(0)
    backbone = vit_clip(arch="tiny", num_frames=4, temporal=temporal)
    kwargs = {"text_encoder": "chars", "class_texts": CLASSES, "cov_dim": 8, **kwargs}
    return XCLIP(backbone, aux_heads=2, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- state-dict layout
@pytest.mark.parametrize("trained", [False, True])
def test_state_dict_layout_is_pinned(trained: bool) -> None:
    method = make(train_text_encoder=trained)
    keys = list(method.state_dict())
    backbone = ["backbone." + k for k in method.backbone.state_dict()]
    text = ["text_encoder.embed.weight", "text_encoder.out.weight", "text_encoder.out.bias"]
    aux = ["aux_head." + k for k in method.aux_head.state_dict()]  # type: ignore[union-attr]
    assert keys == ["logit_scale", *backbone, *(text if trained else []), "text_proj.weight", *aux]
    tops = list(dict.fromkeys(k.split(".")[0] for k, _ in method.named_parameters()))
    assert tops == ["logit_scale", "backbone", *(["text_encoder"] if trained else [])] + [
        "text_proj",
        "aux_head",
    ]  # parameter order = optimiser-state order of older checkpoints
    fresh = make(train_text_encoder=trained)
    fresh.load_state_dict(method.state_dict(), strict=True)


# ---------------------------------------------------------------------- class-text table
def test_frozen_table_is_encoded_once_and_projected() -> None:
    method = make(held_out_classes=["bowling"])
    encoder = method.encoder
    tokens = encoder.tokenize(CLASSES)  # (K, L)
    assert (
        torch.equal(method.class_tokens, tokens)
        and method.class_tokens is method.class_table.tokens
    )
    torch.testing.assert_close(method.class_features, encoder(tokens))
    assert method.seen_mask.tolist() == [True, False, True, True]
    labels = torch.tensor([2, 0, 2])
    expected = encoder(tokens)[labels] @ method.text_proj.weight.T  # (N, D_text) -> (N, E)
    torch.testing.assert_close(method.class_text_features(labels), expected)
    torch.testing.assert_close(
        method.class_embeddings(), F.normalize(method.class_text_features(), dim=-1)
    )
    assert {"class_table.tokens", "class_table.features", "class_table.seen"} <= {
        n for n, _ in method.named_buffers()
    }


def test_trained_encoder_reencodes_each_class_once_with_gradients() -> None:
    method = make(train_text_encoder=True)
    assert method.class_features.shape == (0, 16)  # nothing stored: the encoder trains
    labels = torch.tensor([3, 1, 3, 3])
    feats = method.class_text_features(labels)  # (N, E)
    expected = method.text_proj(method.text_encoder(method.class_tokens))[labels]  # type: ignore[misc]
    torch.testing.assert_close(feats, expected)
    feats.sum().backward()
    assert method.text_encoder.embed.weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_keep_seen_drops_held_out_rows_and_checks_labels() -> None:
    method = make(held_out_classes=["archery", "bowling"])
    x = torch.arange(4.0).view(4, 1)
    kept_x, kept, keep = method.class_table.keep_seen(x, torch.tensor([0, 1, 2, 3]))
    assert keep.tolist() == [False, False, True, True]
    assert kept.tolist() == [2, 3] and kept_x.flatten().tolist() == [2.0, 3.0]
    keep_item = method.train_item_filter()
    assert keep_item is not None and make().train_item_filter() is None
    assert [keep_item(type("Item", (), {"label": k})) for k in range(4)] == [
        False,
        False,
        True,
        True,
    ]
    with pytest.raises(ValueError, match=r"XCLIP: labels must be in \[0, 4\)"):
        method.class_table.keep_seen(x, torch.tensor([0, 4, 1, 2]))
    with pytest.raises(ValueError, match=r"XCLIP.set_class_texts: need non-empty strings"):
        method.set_class_texts(["", "b"])


# ---------------------------------------------------------------------- stages (Sec. 4.2)
@pytest.mark.parametrize(
    ("key", "text_name", "group"),
    [
        ("backbone.transformer.resblocks.0.message_temporal.channel_conv.weight", "clip", "tws"),
        ("backbone.transformer.resblocks.0.attn.in_proj_weight", "clip", "clip"),
        ("backbone.transformer.resblocks.0.message_fc.weight", "clip", "new"),
        ("backbone.temporal_embedding", "clip", "new"),
        ("backbone.head.weight", "clip", "new"),
        ("text_encoder.token_embedding.weight", "clip", "clip"),
        ("text_encoder.embed.weight", "minilm", "new"),
        ("text_proj.weight", "clip", "new"),
        ("logit_scale", "clip", "new"),
        ("aux_head.fc_cov.weight", "clip", "new"),
    ],
)
def test_lr_group_rules(key: str, text_name: str, group: str) -> None:
    assert lr_group(key, text_name) == group


def test_stage_one_freezes_clip_and_multipliers_cover_every_parameter() -> None:
    method = make(freeze_clip=True, tws_lr_mult=10.0, new_lr_mult=3.0)
    mults = method.lr_multipliers()
    assert list(mults) == [k for k, _ in method.named_parameters()]
    for key, p in method.named_parameters():
        group = lr_group(key, "chars")
        assert mults[key] == {"tws": 10.0, "new": 3.0, "clip": 1.0}[group], key
        assert p.requires_grad == (group != "clip"), key
    groups = method.param_groups()
    assert not groups["clip"] and groups["tws"] and groups["new"]
    assert sum(map(len, groups.values())) == sum(p.requires_grad for p in method.parameters())


def test_stage_two_starts_from_stage_one(tmp_path: Path) -> None:
    stage1 = make(temporal="none", freeze_clip=True)
    with torch.no_grad():
        for p in stage1.parameters():
            p.add_(1.0)  # differ from a fresh seed-0 model
    path = tmp_path / "s1.pt"
    torch.save({"model": stage1.state_dict()}, path)
    stage2 = make(init_checkpoint=str(path))
    w1, w2 = stage1.state_dict(), stage2.state_dict()
    assert all(torch.equal(w2[k], v) for k, v in w1.items())
    assert any("message_temporal." in k for k in set(w2) - set(w1))  # new in stage 2
    torch.save({"other": 0}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt is not a vidssl checkpoint"):
        stage2.load_init_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="init_checkpoint not found"):
        load_init_checkpoint(stage2, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="does not fit this model"):
        make(aux=False, init_checkpoint=str(path))  # stage 1 has an auxiliary head


# ---------------------------------------------------------------------- objective (eq. 22)
def test_language_video_loss_matches_its_parts() -> None:
    torch.manual_seed(0)
    n, t, p, e, k = 6, 4, 3, 16, 4
    tokens = VideoTokens(
        video=torch.randn(n, e), frames=torch.randn(n, t, e), patches=torch.randn(n, t, p, e)
    )
    text, scale = torch.randn(n, e), torch.tensor(2.0)
    labels = torch.tensor([0, 2, 3, 0, 2, 3])
    seen = torch.tensor([True, False, True, True])  # class 1 held out
    head = AuxHead(e, k, num_frames=t, cov_dim=4, iterations=3, heads=2, dropout=0.0).eval()
    loss, logs = language_video_loss(
        tokens, text, labels, scale, weight=0.3, aux_head=head, seen=seen, owner="X"
    )
    loss_m = video_text_contrastive(tokens.video, text, scale, labels)
    logits = head(tokens.patches, tokens.video)[:, seen]  # held-out column removed
    loss_s = F.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1, 2]))  # labels among seen
    torch.testing.assert_close(loss, 0.3 * loss_m + 0.7 * loss_s)
    assert list(logs) == ["loss_contrastive", "loss_aux", "acc_aux"]
    torch.testing.assert_close(logs["loss_aux"], loss_s)
    only_m, logs_m = language_video_loss(
        tokens, text, labels, scale, weight=0.3, aux_head=None, seen=seen, owner="X"
    )
    torch.testing.assert_close(only_m, 0.3 * loss_m)
    assert list(logs_m) == ["loss_contrastive"]
    wide = AuxHead(e, k + 1, num_frames=t, cov_dim=4, iterations=3, heads=2)
    with pytest.raises(ValueError, match="X: auxiliary head has 5 classes, class texts 4"):
        language_video_loss(
            tokens, text, labels, scale, weight=0.3, aux_head=wide, seen=seen, owner="X"
        )
