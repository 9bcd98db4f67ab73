"""Objective of the language-video method (``vidssl.methods.xclip``, seed 004, eq. 22).

    loss = w * L_m + (1 - w) * L_s

L_m: the symmetric video-text contrastive loss (eqs. 15-17, ``vidssl.losses.video_text``) over
every rank's pairs; L_s: the auxiliary classifier's cross-entropy (eq. 21, Sec. 3.4,
``vidssl.models.cov_pool.AuxHead``), which never predicts a held-out class.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from vidssl import dist
from vidssl.losses.video_text import video_text_contrastive
from vidssl.models.backbones.clip_video import VideoTokens
from vidssl.models.cov_pool import AuxHead


def language_video_loss(
    tokens: VideoTokens,
    text: Tensor,
    labels: Tensor,
    logit_scale: Tensor,
    *,
    weight: float,
    aux_head: AuxHead | None,
    seen: Tensor,
    owner: str,
) -> tuple[Tensor, dict[str, Tensor]]:
    """(loss, detached logs) of eq. (22); L_s only with an ``aux_head``.

    tokens: ``forward_tokens`` output, video (N, E) and patches (N, T, P, E); text: (N, E)
    projected class texts of ``labels`` (N,); seen: (K,) bool, False for held-out classes
    (K = the auxiliary head's outputs). Errors name ``owner``.
    """
    loss_m = video_text_contrastive(  # eqs. (15-17), the negatives from every rank
        tokens.video,
        text,
        logit_scale,
        labels,
        video_all=dist.all_gather_with_grad(tokens.video),
        text_all=dist.all_gather_with_grad(text),
        labels_all=dist.concat_all_gather(labels),
        offset=dist.get_rank() * labels.shape[0],
    )
    logs: dict[str, Tensor] = {"loss_contrastive": loss_m.detach()}
    loss = weight * loss_m
    if aux_head is None:
        return loss, logs
    if aux_head.fc_cov.out_features != seen.shape[0]:
        raise ValueError(
            f"{owner}: auxiliary head has {aux_head.fc_cov.out_features} classes, "
            f"class texts {seen.shape[0]}"
        )
    logits = aux_head(tokens.patches, tokens.video)  # (N, K)
    logits = logits.masked_fill(~seen, float("-inf"))  # never held-out classes
    loss_s = F.cross_entropy(logits, labels)  # eq. (21)
    logs["loss_aux"] = loss_s.detach()
    logs["acc_aux"] = (logits.argmax(1) == labels).float().mean().detach()
    return loss + (1.0 - weight) * loss_s, logs  # eq. (22)
