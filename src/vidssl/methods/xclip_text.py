"""Class texts of the language-video method (``vidssl.methods.xclip``, seed 004, Sec. 3.3).

One text per class, row = label. The texts are tokenised once and, with a frozen text encoder,
encoded once (``TEXT_CHUNK`` texts per forward), so a training step only projects stored
features. :class:`ClassTextTable` holds non-persistent buffers only: it adds no state-dict key;
the encoder (``text_encoder.*``) and the projection (``text_proj.*``) stay with the method.
Held-out classes (zero-shot protocol) are chosen here and dropped from batches by
``ClassTextTable.keep_seen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidssl import dist
from vidssl.bars import ProgressBar
from vidssl.text import create_text_encoder
from vidssl.text.class_sets import choose_held_out, resolve_class_names
from vidssl.text.prompts import TEXT_MODES
from vidssl.text.prompts import class_texts as prompt_texts

TEXT_CHUNK = 64  # class texts encoded per forward when building the table


def resolve_classes(
    owner: str,
    class_texts: str | Sequence[str] | None,
    prompt_mode: str,
    descriptions: str | None,
    template: str,
    held_out_classes: Sequence[str] | None,
    held_out_fraction: float,
    held_out_seed: int,
) -> tuple[list[str] | None, list[str] | None, list[int]]:
    """(class names, one text per class, held-out labels) from a method's arguments.

    A class-list name / file (:mod:`vidssl.text.class_sets`) is turned into texts by
    ``prompt_mode`` (:mod:`vidssl.text.prompts`); a list is both names and texts. Held-out
    classes are ``held_out_classes`` (names) or a seeded ``held_out_fraction`` of the classes.
    Errors name ``owner`` and the argument.
    """
    if prompt_mode not in TEXT_MODES:
        raise ValueError(f"{owner}: prompt_mode must be one of {list(TEXT_MODES)}")
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"{owner}: held_out_fraction must be in [0, 1)")
    names: list[str] | None = None
    texts: list[str] | None = None
    if isinstance(class_texts, str):  # a class-list name / file -> one text per class
        names = resolve_class_names(class_texts)
        texts = prompt_texts(names, prompt_mode, descriptions, template)
    elif class_texts is not None:
        names, texts = list(class_texts), list(class_texts)
    if not (held_out_classes or held_out_fraction > 0):
        return names, texts, []
    if names is None:
        raise ValueError(f"{owner}: held-out classes need class_texts")
    return names, texts, choose_held_out(names, held_out_classes, held_out_fraction, held_out_seed)


def build_text_encoder(
    name: str | None,
    clip_checkpoint: str | Path | None,
    kwargs: dict[str, Any] | None,
    embed_dim: int,
) -> tuple[str, nn.Module, nn.Linear]:
    """(name, encoder, projection) of the text side.

    The encoder comes from ``vidssl.text.TEXT_ENCODERS``: ``name``, else ``"clip"`` when a
    ``clip_checkpoint`` is given (its default ``checkpoint``), else ``"minilm"``. The learned
    projection maps its features (..., D_text) to the video space (..., embed_dim): the
    identity for a CLIP encoder of the video width (CLIP's joint space, so zero-shot alignment
    holds at step 0), else N(0, 1 / D_text) weights.
    """
    text_name = name or ("clip" if clip_checkpoint is not None else "minilm")
    kwargs = dict(kwargs or {})
    if clip_checkpoint is not None and text_name == "clip":
        kwargs.setdefault("checkpoint", clip_checkpoint)
    encoder = create_text_encoder(text_name, **kwargs)
    text_dim = int(encoder.output_dim)
    proj = nn.Linear(text_dim, embed_dim, bias=False)
    if text_dim == embed_dim and text_name == "clip":
        nn.init.eye_(proj.weight)  # keep CLIP's joint space at initialisation
    else:
        nn.init.normal_(proj.weight, std=text_dim**-0.5)
    return text_name, encoder, proj


def class_count(
    owner: str, texts: Sequence[str] | None, num_classes: int | None, needed: bool
) -> int | None:
    """K: ``len(texts)`` when texts are given (``num_classes``, if set, must agree), else
    ``num_classes``, which the auxiliary head (``needed``) cannot do without."""
    if texts is not None:
        if num_classes is not None and num_classes != len(texts):
            raise ValueError(f"{owner}: num_classes={num_classes} but {len(texts)} class_texts")
        num_classes = len(texts)
    if needed and not num_classes:
        raise ValueError(
            f"{owner}: the auxiliary head needs num_classes or class_texts (or aux=False)"
        )
    return num_classes


class ClassTextTable(nn.Module):
    """Per-class buffers, row = label (all non-persistent).

    ``tokens``: (K, L) token ids; ``features``: (K, D_text) frozen-encoder outputs (empty with
    a trained encoder, which re-encodes ``tokens``); ``seen``: (K,) bool, False = held out.
    Errors name ``owner``, the method that holds the table.
    """

    tokens: Tensor
    features: Tensor
    seen: Tensor

    def __init__(self, text_dim: int, owner: str) -> None:
        super().__init__()
        self.owner = owner
        self.register_buffer("tokens", torch.zeros(0, 0, dtype=torch.long), persistent=False)
        self.register_buffer("features", torch.zeros(0, text_dim), persistent=False)
        self.register_buffer("seen", torch.ones(0, dtype=torch.bool), persistent=False)

    @property
    def num_texts(self) -> int:
        """K, the number of class texts set (0 before ``set_texts``)."""
        return self.tokens.shape[0]

    @torch.no_grad()
    def set_texts(
        self,
        texts: Sequence[str],
        encoder: nn.Module,
        *,
        encode: bool,
        held_out: Sequence[int],
        device: torch.device,
    ) -> None:
        """Tokenise ``texts`` (K) with ``encoder``, store its features when ``encode`` (a frozen
        encoder) and mark the ``held_out`` labels unseen; every buffer lands on ``device``."""
        texts = list(texts)
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{self.owner}.set_class_texts: need non-empty strings")
        tokens = encoder.tokenize(texts)  # (K, L)
        self.tokens = tokens.to(device)
        if encode:
            encoder = encoder.to(device)
            chunks = range(0, len(texts), TEXT_CHUNK)
            feats = [
                encoder(tokens[i : i + TEXT_CHUNK].to(device))
                for i in ProgressBar(
                    chunks, desc="class texts", disable=len(chunks) < 4, leave=False
                )
            ]
            self.features = torch.cat(feats).float()  # (K, D_text)
        seen = torch.ones(len(texts), dtype=torch.bool, device=device)
        seen[[k for k in held_out if k < len(texts)]] = False
        self.seen = seen

    def projected(
        self, proj: nn.Module, encoder: nn.Module | None, labels: Tensor | None = None
    ) -> Tensor:
        """Projected class texts (K, E), or (N, E) for ``labels`` (N,).

        ``encoder`` None uses the stored ``features``; a (trained) encoder re-encodes the
        tokens, each class in ``labels`` once.
        """
        k = self.num_texts
        if k == 0:
            raise RuntimeError(f"{self.owner}: call set_class_texts(...) first")
        if labels is not None and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(
                f"{self.owner}: labels must be in [0, {k}) (one class text per class), got "
                f"min {int(labels.min())}, max {int(labels.max())}"
            )
        if encoder is None:
            return proj(self.features if labels is None else self.features[labels])
        if labels is None:
            return proj(encoder(self.tokens))
        classes, inverse = labels.unique(return_inverse=True)  # (C,) classes, (N,) -> row in C
        return proj(encoder(self.tokens[classes]))[inverse]

    def keep_seen(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Zero-shot protocol: held-out videos never reach the loss.

        x: (N, ...), labels: (N,) -> x[keep], labels[keep], keep: (N,) bool. Under DDP a batch
        may hold no held-out class (the ranks' batches must keep one size).
        """
        k = self.seen.shape[0]
        if k == 0 or labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"{self.owner}: labels must be in [0, {k}) (one class text per class)")
        keep = self.seen[labels]  # (N,) bool
        if dist.is_dist() and not bool(keep.all()):
            raise RuntimeError(
                f"{self.owner}: a batch holds held-out classes under DDP; build the dataset "
                "with train_item_filter (the engine does)"
            )
        return x[keep], labels[keep], keep
