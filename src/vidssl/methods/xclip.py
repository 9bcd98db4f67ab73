"""Language-video contrastive learning with spatio-temporal auxiliary supervision (seed 004).

Zhang et al. 2024 extend CLIP to video in the spirit of X-CLIP: a video ViT with message
tokens and temporal weighted shift (``vidssl.models.clip_video``, Sec. 3.2) is trained against
text embeddings of the class descriptions (Sec. 3.3) with the symmetric contrastive loss
L_m (eqs. 15-17, ``vidssl.losses.video_text``), plus an auxiliary classifier on power-normalised
covariance pooling of the visual tokens, L_s (Sec. 3.4, ``vidssl.models.cov_pool``):

    loss = w * L_m + (1 - w) * L_s,  w = 0.5 (eq. 22, Table 3(c)).

Inference uses the contrastive branch only: zero-shot / closed-set scores are cosines between
video embeddings and class text embeddings (``zero_shot_logits``).

A batch needs only ``"video"`` (N, C, T, H, W) and ``"label"`` (N,); the class texts (names or
LLM descriptions, one per class) are set once per dataset with ``set_class_texts`` or the
``class_texts`` argument. Text encoders are chosen from ``vidssl.text.TEXT_ENCODERS``:
``"clip"`` (CLIP's text transformer, from ``clip_checkpoint``) or ``"minilm"`` (offline
all-MiniLM-L6-v2, the default without a CLIP file); a learned projection maps their output to
the video embedding space (initialised to the identity when the sizes match, so CLIP's
zero-shot alignment holds at step 0).

Departures: the text encoder is frozen by default (``train_text_encoder=False``) and the class
text table is computed once, which keeps CPU training cheap; the paper fine-tunes all CLIP
parameters in its second stage (Sec. 4.2). The two-stage schedule (stage 1 without TWS) and the
per-module learning-rate multipliers (x1000 TWS, x100 new modules) belong to the training
configuration, not to this module; ``param_groups()`` exposes the three groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from vidssl import dist
from vidssl.losses.video_text import (
    INIT_LOGIT_SCALE,
    logit_scale_value,
    video_text_contrastive,
    video_text_logits,
)
from vidssl.methods.base import Method
from vidssl.models.clip_video import CLIP_MEAN, CLIP_STD, NEW_MODULE_KEYS
from vidssl.models.cov_pool import AuxHead
from vidssl.text import create_text_encoder

TEXT_CHUNK = 64  # class texts encoded per forward when building the table


class XCLIP(Method):
    recipe: ClassVar[str] = "clip"
    recipe_overrides: ClassVar[dict[str, Any]] = {"mean": CLIP_MEAN, "std": CLIP_STD}
    default_backbone: ClassVar[str | None] = "vit_clip"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        class_texts: Sequence[str] | None = None,
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
    ) -> None:
        super().__init__(backbone)
        name = type(self).__name__
        if not hasattr(backbone, "forward_tokens"):
            raise TypeError(
                f"{name}: backbone {type(backbone).__name__} has no forward_tokens; use a video "
                "ViT backbone such as 'vit_clip'"
            )
        if not 0.0 <= contrastive_weight <= 1.0:
            raise ValueError(
                f"{name}: contrastive_weight must be in [0, 1], got {contrastive_weight}"
            )
        if class_texts is not None:
            if num_classes is not None and num_classes != len(class_texts):
                raise ValueError(
                    f"{name}: num_classes={num_classes} but {len(class_texts)} class_texts"
                )
            num_classes = len(class_texts)
        if aux and contrastive_weight < 1.0 and not num_classes:
            raise ValueError(
                f"{name}: the auxiliary head needs num_classes or class_texts (or aux=False)"
            )
        self.contrastive_weight = contrastive_weight
        self.train_text_encoder = train_text_encoder

        text_name = text_encoder or ("clip" if clip_checkpoint is not None else "minilm")
        kwargs = dict(text_kwargs or {})
        if clip_checkpoint is not None and text_name == "clip":
            kwargs.setdefault("checkpoint", clip_checkpoint)
        encoder = create_text_encoder(text_name, **kwargs)
        self.text_name = text_name
        if train_text_encoder:
            self.text_encoder: nn.Module | None = encoder
        else:  # frozen and kept out of the state dict: only the class table it makes is used
            encoder.requires_grad_(False).eval()
            self.text_encoder = None
            self._frozen_text = (encoder,)

        embed = self.feature_dim
        text_dim = int(encoder.output_dim)
        self.text_proj = nn.Linear(text_dim, embed, bias=False)
        if text_dim == embed and text_name == "clip":
            nn.init.eye_(self.text_proj.weight)  # keep CLIP's joint space at initialisation
        else:
            nn.init.normal_(self.text_proj.weight, std=text_dim**-0.5)
        if logit_scale_init is None:
            logit_scale_init = getattr(encoder, "logit_scale_init", None) or INIT_LOGIT_SCALE
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

        self.aux_head: AuxHead | None = None
        if aux and contrastive_weight < 1.0:
            self.aux_head = AuxHead(
                embed,
                int(num_classes or 0),
                num_frames=getattr(backbone, "num_frames", 8),
                cov_dim=cov_dim,
                iterations=cov_iterations,
                heads=aux_heads,
                dropout=aux_dropout,
            )
        self.num_classes = num_classes or 0
        self.register_buffer("class_tokens", torch.zeros(0, 0, dtype=torch.long), persistent=False)
        self.register_buffer("class_features", torch.zeros(0, text_dim), persistent=False)
        if class_texts is not None:
            self.set_class_texts(class_texts)

    # ------------------------------------------------------------------ class texts
    @property
    def encoder(self) -> nn.Module:
        return self.text_encoder if self.text_encoder is not None else self._frozen_text[0]

    @torch.no_grad()
    def set_class_texts(self, texts: Sequence[str]) -> None:
        """Tokenise (and, with a frozen encoder, encode) one text per class, index = label."""
        texts = list(texts)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{type(self).__name__}.set_class_texts: need non-empty strings")
        device = self.logit_scale.device
        tokens = self.encoder.tokenize(texts)  # (K, L)
        self.class_tokens = tokens.to(device)
        if self.text_encoder is None:
            encoder = self.encoder.to(device)
            chunks = range(0, len(texts), TEXT_CHUNK)
            feats = [
                encoder(tokens[i : i + TEXT_CHUNK].to(device))
                for i in tqdm(chunks, desc="class texts", disable=len(chunks) < 4, leave=False)
            ]
            self.class_features = torch.cat(feats).float()  # (K, text_dim)

    def class_text_features(self, labels: Tensor | None = None) -> Tensor:
        """Projected class text embeddings c: (K, E), or (N, E) for ``labels`` (N,)."""
        k = self.class_tokens.shape[0]
        if k == 0:
            raise RuntimeError(f"{type(self).__name__}: call set_class_texts(...) first")
        if labels is not None and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(
                f"{type(self).__name__}: labels must be in [0, {k}) (one class text per "
                f"class), got min {int(labels.min())}, max {int(labels.max())}"
            )
        if self.text_encoder is None:
            feats = self.class_features if labels is None else self.class_features[labels]
            return self.text_proj(feats)
        if labels is None:
            return self.text_proj(self.text_encoder(self.class_tokens))
        classes, inverse = labels.unique(return_inverse=True)  # encode each class once
        return self.text_proj(self.text_encoder(self.class_tokens[classes]))[inverse]

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
        out = self.backbone.forward_tokens(x)
        text = self.class_text_features(labels)  # (N, E)
        video_all = dist.all_gather_with_grad(out.video)
        text_all = dist.all_gather_with_grad(text)
        labels_all = dist.concat_all_gather(labels)
        offset = dist.get_rank() * x.shape[0]
        loss_m = video_text_contrastive(
            out.video,
            text,
            self.logit_scale,
            labels,
            video_all=video_all,
            text_all=text_all,
            labels_all=labels_all,
            offset=offset,
        )
        w = self.contrastive_weight
        logs: dict[str, Tensor] = {"loss_contrastive": loss_m.detach()}
        loss = w * loss_m
        if self.aux_head is not None:
            if self.aux_head.fc_cov.out_features != self.class_tokens.shape[0]:
                raise ValueError(
                    f"{name}: auxiliary head has {self.aux_head.fc_cov.out_features} classes, "
                    f"class texts {self.class_tokens.shape[0]}"
                )
            logits = self.aux_head(out.patches, out.video)
            loss_s = F.cross_entropy(logits, labels)  # eq. (21)
            loss = loss + (1.0 - w) * loss_s  # eq. (22)
            logs["loss_aux"] = loss_s.detach()
            logs["acc_aux"] = (logits.argmax(1) == labels).float().mean().detach()
        with torch.no_grad():
            scores = video_text_logits(out.video, self.class_text_features(), self.logit_scale)
            logs["acc_zero_shot"] = (scores.argmax(1) == labels).float().mean()
            logs["logit_scale"] = logit_scale_value(self.logit_scale).detach()
        return {"loss": loss, **logs}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split as Sec. 4.2's learning-rate multipliers need them:
        ``"tws"`` (x1000), ``"new"`` (message tokens, temporal modules, heads, text
        projection, temperature: x100) and ``"clip"`` (pretrained CLIP weights: x1)."""
        groups: dict[str, list[nn.Parameter]] = {"tws": [], "new": [], "clip": []}
        for key, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if "message_temporal." in key:
                groups["tws"].append(p)
            elif key.startswith("backbone.") and not any(k in key for k in NEW_MODULE_KEYS):
                groups["clip" if not key.startswith("backbone.head.") else "new"].append(p)
            elif key.startswith("text_encoder."):
                groups["clip" if self.text_name == "clip" else "new"].append(p)
            else:
                groups["new"].append(p)
        return groups

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode_video(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> unit video embeddings (N, E) (contrastive branch only)."""
        return F.normalize(self.backbone.forward_features(x), dim=-1)

    @torch.no_grad()
    def class_embeddings(self) -> Tensor:
        """Unit class text embeddings (K, E), row = label."""
        return F.normalize(self.class_text_features(), dim=-1)

    @torch.no_grad()
    def zero_shot_logits(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, K) scaled cosines against every class text."""
        feats = self.backbone.forward_features(x)
        return video_text_logits(feats, self.class_text_features(), self.logit_scale)
