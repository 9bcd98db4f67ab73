"""Language-video contrastive learning with spatio-temporal auxiliary supervision (seed 004).

Zhang et al. 2024 extend CLIP to video in the spirit of X-CLIP: a video ViT with message
tokens and temporal weighted shift (``vidssl.models.backbones.clip_video``, Sec. 3.2) is trained against
text embeddings of the class descriptions (Sec. 3.3) with the symmetric contrastive loss
L_m (eqs. 15-17, ``vidssl.losses.video_text``), plus an auxiliary classifier on power-normalised
covariance pooling of the visual tokens, L_s (Sec. 3.4, ``vidssl.models.cov_pool``):

    loss = w * L_m + (1 - w) * L_s,  w = 0.5 (eq. 22, Table 3(c); :mod:`.xclip_loss`).

Inference uses the contrastive branch only: zero-shot / closed-set scores are cosines between
video embeddings and class text embeddings (``zero_shot_logits``).

A batch needs only ``"video"`` (N, C, T, H, W) and ``"label"`` (N,); the video ViT is the
engine's backbone (``model.backbone: vit_clip``; ``arch``, ``temporal``, ``num_frames``,
``image_size``, ``checkpoint``, ... in ``model.args``). One text per class (:mod:`.xclip_text`),
set once per dataset by ``class_texts`` or ``set_class_texts``: a list, or a class-list name /
file (``"ucf101"``, ``"hmdb51"``, ``"kinetics400"``, ``"synthetic"``) made texts by
``prompt_mode`` (``name`` | ``template`` | ``description``, Table 4); encoded by ``"clip"``
(from ``clip_checkpoint``) or ``"minilm"`` (offline, the default without a CLIP file) and a
learned projection (the identity for CLIP of the video width: aligned at step 0).

Two-stage schedule (Sec. 4.2, :mod:`.xclip_stages`) as two engine runs: stage 1 without TWS
(``vit.temporal`` other than ``"tws"``; ``freeze_clip=True`` trains only the new parameters),
stage 2 with TWS trains every parameter from ``init_checkpoint`` with learning-rate multipliers
``tws_lr_mult`` (x1000) and ``new_lr_mult`` (x100) over CLIP's (x1): ``lr_multipliers``.

Zero-shot protocol: ``held_out_classes`` (names) or ``held_out_fraction`` choose classes whose
videos never reach the loss (``train_item_filter`` drops them from the engine's set, other
batches lose them before the forward, single process only), whose texts never enter training
and that the auxiliary classifier never predicts; ``vidssl eval zeroshot`` scores them
against their own texts only.

Departures: the text encoder is frozen by default (``train_text_encoder=False``) and the class
text table is computed once, which keeps CPU training cheap; the paper fine-tunes all CLIP
parameters in its second stage (Sec. 4.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.losses.video_text import INIT_LOGIT_SCALE, logit_scale_value, video_text_logits
from vidssl.methods import xclip_stages as stages
from vidssl.methods.base import Method
from vidssl.methods.xclip_loss import language_video_loss
from vidssl.methods.xclip_text import (
    ClassTextTable,
    build_text_encoder,
    class_count,
    resolve_classes,
)
from vidssl.models.backbones.base import Backbone, pooled_features
from vidssl.models.backbones.clip_video import CLIP_MEAN, CLIP_STD
from vidssl.models.cov_pool import AuxHead
from vidssl.text.prompts import DEFAULT_TEMPLATE


class XCLIP(Method):
    recipe: ClassVar[str] = "clip"
    recipe_overrides: ClassVar[dict[str, Any]] = {"mean": CLIP_MEAN, "std": CLIP_STD}
    matches_text: ClassVar[bool] = True

    def __init__(
        self,
        backbone: nn.Module,
        *,
        class_texts: str | list[str] | None = None,
        num_classes: int | None = None,
        text_encoder: str | None = None,
        clip_checkpoint: str | Path | None = None,
        text_kwargs: dict[str, Any] | None = None,
        train_text_encoder: bool = False,
        contrastive_weight: float = 0.5,
        aux: bool = True,
        cov_dim: int = 128,
        cov_iterations: int = 5,
        aux_dropout: float = 0.5,
        aux_heads: int = 8,
        logit_scale_init: float | None = None,
        prompt_mode: str = "description",
        descriptions: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        held_out_classes: list[str] | None = None,
        held_out_fraction: float = 0.0,
        held_out_seed: int = 0,
        freeze_clip: bool = False,
        tws_lr_mult: float = 1000.0,
        new_lr_mult: float = 100.0,
        init_checkpoint: str | None = None,
    ) -> None:
        name = type(self).__name__
        super().__init__(backbone)
        self.class_names, texts, self.held_out = resolve_classes(
            name,
            class_texts,
            prompt_mode,
            descriptions,
            template,
            held_out_classes,
            held_out_fraction,
            held_out_seed,
        )
        self.tws_lr_mult, self.new_lr_mult = tws_lr_mult, new_lr_mult
        if not (isinstance(backbone, Backbone) and backbone.has_tokens and backbone.num_frames):
            raise TypeError(
                f"{name}: backbone {type(backbone).__name__} has no forward_tokens; use a video "
                "ViT backbone such as 'vit_clip'"
            )
        if not 0.0 <= contrastive_weight <= 1.0:
            raise ValueError(
                f"{name}: contrastive_weight must be in [0, 1], got {contrastive_weight}"
            )
        num_classes = class_count(name, texts, num_classes, aux and contrastive_weight < 1.0)
        self.contrastive_weight = contrastive_weight
        self.train_text_encoder = train_text_encoder

        self.text_name, encoder, proj = build_text_encoder(
            text_encoder, clip_checkpoint, text_kwargs, self.feature_dim
        )
        self.text_encoder: nn.Module | None = encoder if train_text_encoder else None
        if not train_text_encoder:  # frozen, kept out of the state dict: only its table is used
            self._frozen_text = (encoder.requires_grad_(False).eval(),)
        self.text_proj = proj
        if logit_scale_init is None:
            logit_scale_init = getattr(encoder, "logit_scale_init", None) or INIT_LOGIT_SCALE
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

        self.aux_head: AuxHead | None = None
        if aux and contrastive_weight < 1.0:
            self.aux_head = AuxHead(
                self.feature_dim,
                int(num_classes or 0),
                num_frames=int(backbone.num_frames),
                cov_dim=cov_dim,
                iterations=cov_iterations,
                heads=aux_heads,
                dropout=aux_dropout,
            )
        self.num_classes = num_classes or 0
        self.class_table = ClassTextTable(proj.in_features, name)  # adds no state-dict key
        if texts is not None:
            self.set_class_texts(texts)
        if freeze_clip:  # stage 1 (Sec. 4.2): only the parameters new to CLIP learn
            stages.freeze_clip_(self, self.group_of)
        if init_checkpoint is not None:
            self.load_init_checkpoint(init_checkpoint)

    def load_init_checkpoint(self, path: str | Path) -> None:
        """Initialise from a vidssl checkpoint's ``"model"`` state (stage 1 for stage 2)."""
        stages.load_init_checkpoint(self, path)

    def train_item_filter(self) -> Callable[[Any], bool] | None:
        """With held-out classes, a predicate that is False for a training video of one (the
        engine drops those from the set); None without."""
        if not self.held_out:
            return None
        held_out = set(self.held_out)
        return lambda item: int(item.label) not in held_out

    # ------------------------------------------------------------------ class texts
    @property
    def encoder(self) -> nn.Module:
        return self.text_encoder if self.text_encoder is not None else self._frozen_text[0]

    # the table's buffers under their old names: tokens (K, L), features (K, D_text), seen (K,)
    @property
    def class_tokens(self) -> Tensor:
        return self.class_table.tokens

    @property
    def class_features(self) -> Tensor:
        return self.class_table.features

    @property
    def seen_mask(self) -> Tensor:
        return self.class_table.seen

    def set_class_texts(self, texts: Sequence[str]) -> None:
        """Tokenise (and, with a frozen encoder, encode) one text per class, index = label."""
        self.class_table.set_texts(
            texts,
            self.encoder,
            encode=self.text_encoder is None,
            held_out=self.held_out,
            device=self.logit_scale.device,
        )

    def class_text_features(self, labels: Tensor | None = None) -> Tensor:
        """Projected class text embeddings c: (K, E), or (N, E) for ``labels`` (N,)."""
        return self.class_table.projected(self.text_proj, self.text_encoder, labels)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        name = type(self).__name__
        for key in ("video", "label"):
            if key not in batch:
                raise KeyError(f"{name}: batch has no {key!r} (keys: {sorted(batch)})")
        x, labels = batch["video"], batch["label"].long()
        if x.ndim != 5 or labels.shape != (x.shape[0],):
            raise ValueError(
                f"{name}: expected video (N, C, T, H, W) and label (N,), got "
                f"{tuple(x.shape)} and {tuple(labels.shape)}"
            )
        if self.held_out:  # zero-shot protocol: held-out videos never reach the loss
            x, labels, keep = self.class_table.keep_seen(x, labels)
            if labels.numel() == 0:  # the whole batch was held out: a zero loss
                zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
                return {"loss": zero, "held_out_dropped": torch.ones(())}
        out = self.backbone.forward_tokens(x)
        text = self.class_text_features(labels)  # (N, E)
        loss, logs = language_video_loss(
            out,
            text,
            labels,
            self.logit_scale,
            weight=self.contrastive_weight,
            aux_head=self.aux_head,
            seen=self.seen_mask,
            owner=name,
        )
        with torch.no_grad():
            scores = video_text_logits(out.video, self.class_text_features(), self.logit_scale)
            scores = scores.masked_fill(~self.seen_mask, float("-inf"))  # (N, K), seen classes
            logs["acc_zero_shot"] = (scores.argmax(1) == labels).float().mean()
            logs["logit_scale"] = logit_scale_value(self.logit_scale).detach()
        if self.held_out:
            logs["held_out_dropped"] = 1.0 - keep.float().mean()
        return {"loss": loss, **logs}

    def group_of(self, key: str) -> str:
        """Learning-rate group of parameter ``key``: ``"tws"``, ``"new"`` or ``"clip"``."""
        return stages.lr_group(key, self.text_name)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split by :meth:`group_of`: ``"tws"``, ``"new"``, ``"clip"``."""
        return stages.param_groups(self, self.group_of)

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter name -> learning-rate multiplier, read by the engine's optimiser."""
        return stages.lr_multipliers(self, self.group_of, self.tws_lr_mult, self.new_lr_mult)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode_video(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> unit video embeddings (N, E) (contrastive branch only)."""
        return F.normalize(pooled_features(self.backbone, x), dim=-1)

    @torch.no_grad()
    def class_embeddings(self) -> Tensor:
        """Unit class text embeddings (K, E), row = label."""
        return F.normalize(self.class_text_features(), dim=-1)

    @torch.no_grad()
    def zero_shot_logits(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, K) scaled cosines against every class text."""
        feats = pooled_features(self.backbone, x)
        return video_text_logits(feats, self.class_text_features(), self.logit_scale)
