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

Class texts: ``class_texts`` is a list of texts (one per class), or a class-list name / file
resolved with :mod:`vidssl.text.prompts` (``"ucf101"``, ``"hmdb51"``, ``"kinetics400"``, a
class-list file, or ``"synthetic"`` for the synthetic set's motion classes) and turned into
texts by ``prompt_mode`` (``name`` | ``template`` | ``description``, Table 4).

Two-stage schedule (Sec. 4.2) as two engine runs: stage 1 without TWS (``vit.temporal`` other
than ``"tws"``; ``freeze_clip=True`` trains only the new parameters), stage 2 with TWS, every
parameter trained, initialised from stage 1 by ``init_checkpoint`` and with the learning-rate
multipliers ``tws_lr_mult`` (x1000) and ``new_lr_mult`` (x100) over the CLIP weights (x1),
which the engine reads from :meth:`XCLIP.lr_multipliers`.

Zero-shot protocol: ``held_out_classes`` (names) or ``held_out_fraction`` choose classes whose
videos never reach the loss (dropped from each batch before the forward), whose texts never
enter training, and that the auxiliary classifier never predicts; ``vidssl eval zeroshot``
scores them against their own texts only.

The video ViT is the engine's backbone: ``model.backbone: vit_clip`` with its arguments
(``arch``, ``temporal``, ``num_frames``, ``image_size``, ``checkpoint``, ...) in ``model.args``.

The engine removes held-out videos from the training set through :meth:`train_item_filter`;
batches built elsewhere still have them dropped before the forward (single process only).

Departures: the text encoder is frozen by default (``train_text_encoder=False``) and the class
text table is computed once, which keeps CPU training cheap; the paper fine-tunes all CLIP
parameters in its second stage (Sec. 4.2).
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
from vidssl.text.class_sets import choose_held_out, resolve_class_names
from vidssl.text.prompts import DEFAULT_TEMPLATE, TEXT_MODES
from vidssl.text.prompts import class_texts as prompt_texts

TEXT_CHUNK = 64  # class texts encoded per forward when building the table


class XCLIP(Method):
    recipe: ClassVar[str] = "clip"
    recipe_overrides: ClassVar[dict[str, Any]] = {"mean": CLIP_MEAN, "std": CLIP_STD}
    default_backbone: ClassVar[str | None] = "vit_clip"

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
        if prompt_mode not in TEXT_MODES:
            raise ValueError(f"{name}: prompt_mode must be one of {list(TEXT_MODES)}")
        if not 0.0 <= held_out_fraction < 1.0:
            raise ValueError(f"{name}: held_out_fraction must be in [0, 1)")
        self.class_names: list[str] | None = None
        if isinstance(class_texts, str):  # a class-list name / file -> one text per class
            self.class_names = resolve_class_names(class_texts)
            class_texts = prompt_texts(self.class_names, prompt_mode, descriptions, template)
        elif class_texts is not None:
            self.class_names = list(class_texts)
        self.held_out: list[int] = []
        if held_out_classes or held_out_fraction > 0:
            if self.class_names is None:
                raise ValueError(f"{name}: held-out classes need class_texts")
            self.held_out = choose_held_out(
                self.class_names, held_out_classes, held_out_fraction, held_out_seed
            )
        self.tws_lr_mult, self.new_lr_mult = tws_lr_mult, new_lr_mult
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
        self.register_buffer("seen_mask", torch.ones(0, dtype=torch.bool), persistent=False)
        if class_texts is not None:
            self.set_class_texts(class_texts)
        if freeze_clip:  # stage 1 (Sec. 4.2): only the parameters new to CLIP learn
            for key, p in self.named_parameters():
                if self.group_of(key) == "clip":
                    p.requires_grad_(False)
        if init_checkpoint is not None:
            self.load_init_checkpoint(init_checkpoint)

    def load_init_checkpoint(self, path: str | Path) -> None:
        """Initialise from a vidssl checkpoint's ``"model"`` state (e.g. stage 1 for stage 2).

        Parameters of modules new in this stage (TWS / message tokens, ``NEW_MODULE_KEYS``)
        may be missing from the file; anything else missing or unexpected is an error.
        """
        name = type(self).__name__
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"{name}: init_checkpoint not found: {file}")
        try:
            ckpt = torch.load(file, map_location="cpu", weights_only=True)
            state = ckpt["model"]
        except Exception as err:  # torn / foreign files
            raise ValueError(f"{name}: {file} is not a vidssl checkpoint ({err})") from err
        own = self.state_dict()
        shapes = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        if shapes:
            raise ValueError(f"{name}: {file}: shapes differ for {shapes[:5]}")
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not any(m in k for m in NEW_MODULE_KEYS)]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"{name}: {file} does not fit this model: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )

    def train_item_filter(self, item: Any) -> bool:
        """False for a training video of a held-out class (the engine drops it from the set)."""
        return int(item.label) not in self.held_out

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
        seen = torch.ones(len(texts), dtype=torch.bool, device=device)
        held = [k for k in self.held_out if k < len(texts)]
        seen[held] = False
        self.seen_mask = seen

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
        if self.held_out:  # zero-shot protocol: held-out videos never reach the loss
            k = self.seen_mask.shape[0]
            if k == 0 or labels.min() < 0 or labels.max() >= k:
                raise ValueError(f"{name}: labels must be in [0, {k}) (one class text per class)")
            keep = self.seen_mask[labels]  # (N,) bool
            if dist.is_dist() and not bool(keep.all()):  # ranks' batches must keep their size
                raise RuntimeError(
                    f"{name}: a batch holds held-out classes under DDP; build the dataset with "
                    "train_item_filter (the engine does)"
                )
            x, labels = x[keep], labels[keep]
            if labels.numel() == 0:  # the whole batch was held out: a zero loss
                zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
                return {"loss": zero, "held_out_dropped": torch.ones(())}
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
            logits = logits.masked_fill(~self.seen_mask, float("-inf"))  # never held-out classes
            loss_s = F.cross_entropy(logits, labels)  # eq. (21)
            loss = loss + (1.0 - w) * loss_s  # eq. (22)
            logs["loss_aux"] = loss_s.detach()
            logs["acc_aux"] = (logits.argmax(1) == labels).float().mean().detach()
        with torch.no_grad():
            scores = video_text_logits(out.video, self.class_text_features(), self.logit_scale)
            scores = scores.masked_fill(~self.seen_mask, float("-inf"))  # (N, K), seen classes
            logs["acc_zero_shot"] = (scores.argmax(1) == labels).float().mean()
            logs["logit_scale"] = logit_scale_value(self.logit_scale).detach()
        if self.held_out:
            logs["held_out_dropped"] = 1.0 - keep.float().mean()
        return {"loss": loss, **logs}

    def group_of(self, key: str) -> str:
        """Learning-rate group of parameter ``key`` (Sec. 4.2): ``"tws"`` (x1000), ``"new"``
        (message tokens, temporal modules, heads, text projection, temperature: x100) or
        ``"clip"`` (pretrained CLIP weights: x1)."""
        if "message_temporal." in key:
            return "tws"
        if key.startswith("backbone.") and not any(k in key for k in NEW_MODULE_KEYS):
            return "clip" if not key.startswith("backbone.head.") else "new"
        if key.startswith("text_encoder."):
            return "clip" if self.text_name == "clip" else "new"
        return "new"

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split by :meth:`group_of`: ``"tws"``, ``"new"``, ``"clip"``."""
        groups: dict[str, list[nn.Parameter]] = {"tws": [], "new": [], "clip": []}
        for key, p in self.named_parameters():
            if p.requires_grad:
                groups[self.group_of(key)].append(p)
        return groups

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter-name prefix -> learning-rate multiplier for the engine's optimiser
        (Sec. 4.2: TWS x ``tws_lr_mult``, new modules x ``new_lr_mult``, CLIP x1)."""
        mults = {"tws": self.tws_lr_mult, "new": self.new_lr_mult, "clip": 1.0}
        return {key: mults[self.group_of(key)] for key, _ in self.named_parameters()}

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
