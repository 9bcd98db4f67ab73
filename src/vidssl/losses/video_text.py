"""Symmetric video-text contrastive loss (seed 004, Sec. 3.3, eqs. 15-17).

Cosine similarities between video embeddings v and text embeddings c (eq. 15) are scaled by a
learnable inverse temperature 1/gamma and normalised by softmax over the M video-text pairs of
the batch (eq. 16); cross-entropy against the ground-truth matrix q (1 for matching pairs, 0
otherwise, eq. 17) is taken in both directions (video -> text and text -> video) and averaged,
the symmetric loss of CLIP. Videos of the same class in one batch share their class text, so a
row of q can hold several ones; it is normalised to sum to 1 (ActionCLIP's treatment).

The temperature is CLIP's ``logit_scale`` parameter, log(1 / gamma), clamped so that
1 / gamma <= 100 (Radford et al. 2021, Sec. 2.5). Pure functions: the caller gathers across
ranks and passes the gathered rows with ``offset`` (see ``vidssl.dist``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_LOGIT_SCALE = math.log(100.0)
INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature 0.07


def logit_scale_value(logit_scale: Tensor) -> Tensor:
    """1 / gamma = exp(logit_scale) with logit_scale clamped at log(100). Scalar."""
    return logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()


def video_text_logits(video: Tensor, text: Tensor, logit_scale: Tensor) -> Tensor:
    """Scaled cosine similarities (eqs. 15-16 before softmax).

    video: (N, E), text: (M, E) -> (N, M) = exp(logit_scale) * cos(v_i, c_j).
    """
    if video.ndim != 2 or text.ndim != 2 or video.shape[1] != text.shape[1]:
        raise ValueError(
            f"video_text_logits: expected (N, E) and (M, E), got {tuple(video.shape)} and "
            f"{tuple(text.shape)}"
        )
    v = F.normalize(video, dim=-1)
    c = F.normalize(text, dim=-1)
    return logit_scale_value(logit_scale) * torch.einsum("ne,me->nm", v, c)


def _soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over rows of -sum_j q_ij log softmax(logits)_ij, q rows normalised to sum 1."""
    q = target / target.sum(dim=1, keepdim=True)
    return -(q * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def video_text_contrastive(
    video: Tensor,
    text: Tensor,
    logit_scale: Tensor,
    labels: Tensor | None = None,
    *,
    video_all: Tensor | None = None,
    text_all: Tensor | None = None,
    labels_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """L_m of eq. (17) before the weight w: symmetric cross-entropy over video-text pairs.

    video, text: (N, E), row i of ``text`` describing video i; labels: (N,) class ids or None
    (then only pair i-i is positive). ``video_all`` / ``text_all`` / ``labels_all``: the same
    gathered over ranks, (M, E) / (M,), local row i being row ``offset + i`` (default: local).

        loss = 1/2 [ CE(softmax_j s(v_i, c_j) / gamma, q_i.) + CE(softmax_j s(c_i, v_j) / gamma, q_i.) ]

    with q_ij = 1 when videos i and j have the same label (or i == j). Returns a scalar.
    """
    video_all = video if video_all is None else video_all
    text_all = text if text_all is None else text_all
    n, m = video.shape[0], video_all.shape[0]
    if text.shape[0] != n or text_all.shape[0] != m or not 0 <= offset <= m - n:
        raise ValueError(
            f"video_text_contrastive: {n} local / {m} gathered videos, {text.shape[0]} / "
            f"{text_all.shape[0]} texts and offset {offset} do not line up"
        )
    if labels is None:
        target = torch.zeros(n, m, device=video.device)
        target[torch.arange(n), torch.arange(n) + offset] = 1.0
    else:
        labels_all = labels if labels_all is None else labels_all
        target = (labels[:, None] == labels_all[None, :]).float()  # (N, M)
    v2c = _soft_cross_entropy(video_text_logits(video, text_all, logit_scale), target)
    c2v = _soft_cross_entropy(video_text_logits(text, video_all, logit_scale), target)
    return (v2c + c2v) / 2
