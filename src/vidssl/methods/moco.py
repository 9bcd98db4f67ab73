"""MoCo (He et al. 2020) on video clips, as compared in CSTP (Table 3, eq. 2).

Queries come from the online backbone + head on view 1, keys from a momentum copy of both on
view 2. The loss is cross-entropy over [positive key, K queued negatives] / t
(``vidssl.losses.moco_loss``). After the loss, the keys of every rank are gathered
(``vidssl.dist.concat_all_gather``, no grad) and written into the queue, so the queue is the
same on all ranks. The queue and its pointer are registered buffers (checkpointed). The key
encoder follows xi <- m xi + (1 - m) theta after every optimiser step.

Defaults and departures:
- t = 0.07, K = 65536, m = 0.999 (MoCo v1, Sec. 3.3 and 4). K = 65536 is 5 % of ImageNet's
  1.28M images; on a small video set (UCF101 split 1: 9,537 training videos) the same K holds
  about 7 stale keys of every query's own video as negatives. Set ``queue_size`` below the
  number of training videos (the engine warns otherwise, ``Method.negative_queues``). With a
  shuffled order a video's previous key is between 0 and 2 epochs old (triangular), so a queue
  of K <= N keys still holds one with probability K^2 / (2 N^2): 2.3 % for K = 2048, N = 9,537.
- Head n -> 4096 -> 128 with BN + ReLU as in CSTP's appendix; MoCo v2 uses a 2048-wide head
  without BN. ``shuffle_bn=True`` applies MoCo's shuffling BN to the key encoder under DDP
  (CSTP's appendix uses it); in a single process it is a no-op.
- The queue starts as random unit vectors (as MoCo's code); if K is not a multiple of the
  global batch size the writes wrap around the end of the queue.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl import dist
from vidssl.losses import moco_loss
from vidssl.methods.base import Method, check_progress, ema_update_, frozen_copy
from vidssl.models.backbones.base import pooled_features
from vidssl.models.heads import ProjectionHead


class MoCo(Method):
    queue: Tensor
    queue_ptr: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        *,
        temperature: float = 0.07,
        queue_size: int = 65536,
        momentum: float = 0.999,
        hidden_dim: int = 4096,
        out_dim: int = 128,
        num_layers: int = 2,
        shuffle_bn: bool = True,
    ) -> None:
        super().__init__(backbone)
        if temperature <= 0:
            raise ValueError(f"MoCo: temperature must be > 0, got {temperature}")
        if queue_size < 1:
            raise ValueError(f"MoCo: queue_size must be >= 1, got {queue_size}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MoCo: momentum must be in [0, 1], got {momentum}")
        self.temperature = temperature
        self.momentum = momentum
        self.shuffle_bn = shuffle_bn
        self.projector = ProjectionHead(
            self.feature_dim, hidden_dim, out_dim, num_layers=num_layers, batch_norm=True
        )
        self.key_backbone = frozen_copy(backbone)
        self.key_projector = frozen_copy(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def negative_queues(self) -> dict[str, int]:
        """The queue: every row is a negative, own-video keys included (MoCo has no mask)."""
        return {"queue_size": int(self.queue.shape[0])}

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> unit-norm keys (N, D) from the momentum encoder."""
        inverse = None
        if self.shuffle_bn:
            x, inverse = dist.shuffle_across_ranks(x)
        k = self.key_projector(pooled_features(self.key_backbone, x))  # (N, D)
        if inverse is not None:
            k = dist.unshuffle_across_ranks(k, inverse)
        return F.normalize(k, dim=1)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write the keys of every rank (rank-major) at the pointer, wrapping around.

        keys: (N, D) local unit-norm keys. Gathered to (W*N, D); if more than K, only the
        last K survive (as if written one by one). The pointer advances by W*N modulo K.
        """
        keys = dist.concat_all_gather(keys)  # (N, D) -> (W*N, D)
        size, n = self.queue.shape[0], keys.shape[0]
        keep = min(n, size)
        ptr = int(self.queue_ptr)
        rows = (ptr + n - keep + torch.arange(keep, device=self.queue.device)) % size  # (keep,)
        self.queue[rows] = keys[n - keep :].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        v1, v2 = self.two_views(batch)
        q = self.projector(pooled_features(self.backbone, v1))  # (N, D)
        k = self.keys(v2)  # (N, D), no grad
        # The queue is updated in place below, so the loss must see a copy.
        loss = moco_loss(q, k, self.queue.clone(), self.temperature)
        self.enqueue(k)
        with torch.no_grad():
            pos_sim = F.cosine_similarity(q, k, dim=1).mean()
        return {"loss": loss, "pos_sim": pos_sim}

    def on_after_optimizer_step(self, progress: float) -> None:
        check_progress(progress)
        ema_update_(self.key_backbone, self.backbone, self.momentum)
        ema_update_(self.key_projector, self.projector, self.momentum)
