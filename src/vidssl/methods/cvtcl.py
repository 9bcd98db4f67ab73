"""CVTCL (Wang et al.): RGB + optical-flow co-training with local temporal contrast.

Two MoCo instance discriminators (``vidssl.methods.MoCo``: online + momentum encoder + queue),
one per stream; the flow backbone is ``create_backbone(flow_backbone, in_channels=2,
width=flow_width)``. Input: the ``two_stream_sub_clips`` recipe, sub-clips s1..s4 and s1^a in
both streams (``"views"`` / ``"flow_views"``).

- ``stage="init"`` (sec. 2.4 step 1): L1 = alpha L_InfoNCE + beta L_LTCL for each stream,
  summed over the streams (they share no parameter, so this equals two separate runs).
  L_InfoNCE: query s1, key s1^a, the queue as negatives. L_LTCL = L_local (eq. 6) + L_LT
  (eq. 7), each switchable (``use_local``, ``use_lt``: Table 1).
- ``stage="cotrain"`` (step 2): L2 = alpha L_RF + beta L_LTCL, alternating. The run is cut in
  ``2 * cycles`` equal parts by ``progress``: even parts train RGB while the frozen flow
  stream mines its ``topk`` nearest neighbours (eqs. 2-5), odd parts the reverse. The frozen
  stream gets ``requires_grad_(False)`` (no gradient, the optimiser skips it, no momentum
  update). LTCL is added for the streams in ``cotrain_ltcl`` (Table 2: RGB only).
  ``init_checkpoint`` loads the init stage's weights (``weights_only``); queues restart.

Memory (departure, documented): there is no separate memory bank of all videos. The two
queues are written together, so row j of both holds the same clip, and ``queue_index`` holds
its video index (``batch["index"]``). With ``queue_size`` >= the training set the queue is
the memory of (nearly) every training video, its keys up to one epoch stale (CoCLR's queue
has the same staleness). Top-K mining runs over the frozen stream's queue; the trained
stream's queue rows at the mined positions are the positives of L_RF. As in CoCLR, queue
entries of the query's own video are positives of the global loss and never mined; unfilled
rows (index -1) are excluded. In L_local the own-video entries are dropped from negatives.

Checkpoint keys: ``backbone.`` (RGB, the pre-trained backbone of the Method contract) and
``flow_backbone.`` (flow) duplicate ``rgb.backbone.`` / ``flow.backbone.``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vidssl import dist
from vidssl.losses.cvtcl import (
    indices_to_mask,
    local_loss,
    local_temporal_loss,
    multi_instance_nce,
    topk_neighbours,
)
from vidssl.methods.base import Method, check_progress
from vidssl.methods.moco import MoCo
from vidssl.models.backbones import create_backbone

STREAMS: tuple[str, str] = ("rgb", "flow")
VIEW_KEYS: dict[str, str] = {"rgb": "views", "flow": "flow_views"}
# buffers not taken from ``init_checkpoint``: the co-training memory restarts empty
_FRESH = ("rgb.queue", "rgb.queue_ptr", "flow.queue", "flow.queue_ptr", "queue_index", "active")


class TwoStreamBackbone(nn.Module):
    """Two-stream evaluation: x (N, 3 + 2, T, H, W) -> mean of the L2-normalised RGB and flow
    features (N, D). Both backbones must have the same ``feature_dim``."""

    def __init__(self, rgb: nn.Module, flow: nn.Module) -> None:
        super().__init__()
        if rgb.feature_dim != flow.feature_dim:
            raise ValueError(f"feature dims differ: {rgb.feature_dim} vs {flow.feature_dim}")
        self.rgb, self.flow = rgb, flow
        self.feature_dim: int = rgb.feature_dim

    def forward_features(self, x: Tensor) -> Tensor:
        f_rgb = nn.functional.normalize(self.rgb.forward_features(x[:, :3]), dim=1)
        f_flow = nn.functional.normalize(self.flow.forward_features(x[:, 3:]), dim=1)
        return (f_rgb + f_flow) / 2

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


class CVTCL(Method):
    recipe: ClassVar[str] = "two_stream_sub_clips"
    recipe_overrides: ClassVar[dict[str, Any]] = {"num_clips": 4, "anchor_view": True}
    queue_index: Tensor
    active: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        *,
        stage: str = "init",
        flow_backbone: str = "s3d",
        flow_width: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        use_local: bool = True,
        use_lt: bool = True,
        topk: int = 5,
        cycles: int = 2,
        cotrain_ltcl: tuple[str, ...] = ("rgb",),
        init_checkpoint: str | None = None,
        temperature: float = 0.07,
        queue_size: int = 2048,
        momentum: float = 0.999,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        shuffle_bn: bool = True,
    ) -> None:
        super().__init__(backbone)
        if stage not in self.STAGES:
            raise ValueError(f"CVTCL: stage={stage!r}, expected one of {sorted(self.STAGES)}")
        if topk < 0 or cycles < 1 or not set(cotrain_ltcl) <= set(STREAMS):
            raise ValueError(f"CVTCL: bad topk={topk} / cycles={cycles} / {cotrain_ltcl=}")
        if topk >= queue_size:
            raise ValueError(f"CVTCL: topk={topk} must be < queue_size={queue_size}")
        self.stage, self.alpha, self.beta, self.topk, self.cycles = stage, alpha, beta, topk, cycles
        self.use_local, self.use_lt, self.cotrain_ltcl = use_local, use_lt, set(cotrain_ltcl)
        self.temperature = temperature
        moco = dict(
            temperature=temperature,
            queue_size=queue_size,
            momentum=momentum,
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            shuffle_bn=shuffle_bn,
        )
        self.flow_backbone = create_backbone(flow_backbone, width=flow_width, in_channels=2)
        self.rgb = MoCo(backbone, **moco)
        self.flow = MoCo(self.flow_backbone, **moco)
        self.register_buffer("queue_index", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("active", torch.zeros((), dtype=torch.long))  # 0 RGB, 1 flow
        if init_checkpoint is not None:
            self.load_init(init_checkpoint)

    def load_init(self, path: str) -> None:
        """Weights of an init-stage run (``vidssl pretrain`` checkpoint, read weights_only)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "model" not in ckpt:
            raise ValueError(f"method.init_checkpoint={path}: not a vidssl checkpoint")
        state = {k: v for k, v in ckpt["model"].items() if k not in _FRESH}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if [k for k in missing if k not in _FRESH] or unexpected:
            raise ValueError(
                f"method.init_checkpoint={path} does not fit this CVTCL model: missing "
                f"{missing[:5]}, unexpected {unexpected[:5]}"
            )

    def streams(self) -> dict[str, MoCo]:
        return {"rgb": self.rgb, "flow": self.flow}

    # ---- losses

    def encode(self, name: str, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Query of s1 (N, D) with grad, keys of [s1^a, s2, s3, s4] (N, 4, D), views (V, N, ...)."""
        views = batch[VIEW_KEYS[name]]
        if len(views) != 5:
            raise ValueError(f"CVTCL: batch[{VIEW_KEYS[name]!r}] must hold s1..s4 + s1^a")
        s = self.streams()[name]
        q = s.projector(s.backbone.forward_features(views[0]))  # (N, D)
        n = q.shape[0]
        stacked = torch.cat([views[4], *views[1:4]])  # 4 x (N, C, T, H, W) -> (4N, ...)
        keys = s.keys(stacked).reshape(4, n, -1).transpose(0, 1)  # (4N, D) -> (N, 4, D)
        return q, keys, views[0]

    def ltcl(self, q: Tensor, keys: Tensor, queue: Tensor, own: Tensor) -> dict[str, Tensor]:
        out = {}
        if self.use_local:
            out["local"] = local_loss(q, keys, queue, self.temperature, exclude=own)
        if self.use_lt:
            out["lt"] = local_temporal_loss(q, keys[:, 0], keys[:, 1:], self.temperature)
        return out

    def own_video(self, index: Tensor) -> Tensor:
        """(N,) video indices -> (N, Q) bool: queue rows holding the same video."""
        return index.to(self.queue_index.device)[:, None] == self.queue_index[None, :]

    def init_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        own = self.own_video(torch.as_tensor(batch["index"]))
        logs: dict[str, Tensor] = {}
        total, new_keys = 0.0, {}
        for name, s in self.streams().items():
            q, keys, _ = self.encode(name, batch)
            queue = s.queue.clone()  # enqueued in place below
            nce = multi_instance_nce(q, keys[:, 0], queue, own, self.temperature)
            parts = self.ltcl(q, keys, queue, own)
            total = total + self.alpha * nce + self.beta * sum(parts.values(), torch.zeros(()))
            logs |= {
                f"{name}_nce": nce.detach(),
                **{f"{name}_{k}": v.detach() for k, v in parts.items()},
            }
            new_keys[name] = keys[:, 0]
        self.enqueue(new_keys, torch.as_tensor(batch["index"]))
        return {"loss": total, **logs}

    def cotrain_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        index = torch.as_tensor(batch["index"])
        trained, frozen = STREAMS[int(self.active)], STREAMS[1 - int(self.active)]
        own = self.own_video(index)  # (N, Q)
        q, keys, _ = self.encode(trained, batch)
        fz = self.streams()[frozen]
        with torch.no_grad():
            v = batch[VIEW_KEYS[frozen]]
            z = fz.keys(torch.cat([v[0], v[4]])).chunk(2)  # mining query s1, key s1^a
            skip = own | (self.queue_index < 0)[None, :]  # own video, unfilled rows: (N, Q)
            mined = topk_neighbours(z[0], fz.queue, self.topk, exclude=skip)  # (N, K)
        pos = (indices_to_mask(mined, own.shape[1]) & ~skip) | own  # (N, Q)
        queue = self.streams()[trained].queue.clone()
        rf = multi_instance_nce(q, keys[:, 0], queue, pos, self.temperature)
        parts = self.ltcl(q, keys, queue, own) if trained in self.cotrain_ltcl else {}
        loss = self.alpha * rf + self.beta * sum(parts.values(), torch.zeros(()))
        self.enqueue({trained: keys[:, 0], frozen: z[1]}, index)
        logs = {f"{trained}_{k}": v.detach() for k, v in parts.items()}
        return {"loss": loss, f"{trained}_rf": rf.detach(), "active": self.active.float(), **logs}

    STAGES: ClassVar[dict[str, Any]] = {"init": init_step, "cotrain": cotrain_step}

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        self.apply_freeze()
        return self.STAGES[self.stage](self, batch)

    # ---- memory and alternation

    @torch.no_grad()
    def enqueue(self, keys: dict[str, Tensor], index: Tensor) -> None:
        """Write both streams' keys (N, D) and the video indices (N,) at the same queue rows."""
        ptr, size = int(self.rgb.queue_ptr), self.queue_index.shape[0]
        idx = dist.concat_all_gather(index.to(self.queue_index.device))  # (W*N,)
        n, keep = idx.shape[0], min(idx.shape[0], size)
        rows = (ptr + n - keep + torch.arange(keep, device=idx.device)) % size  # as MoCo.enqueue
        self.queue_index[rows] = idx[n - keep :]
        for name, k in keys.items():
            self.streams()[name].enqueue(k)

    def trained_streams(self) -> list[str]:
        return list(STREAMS) if self.stage == "init" else [STREAMS[int(self.active)]]

    def apply_freeze(self) -> None:
        for name, s in self.streams().items():
            train = name in self.trained_streams()
            for module in (s.backbone, s.projector):
                module.requires_grad_(train)

    def on_after_optimizer_step(self, progress: float) -> None:
        check_progress(progress)
        for name in self.trained_streams():
            self.streams()[name].on_after_optimizer_step(progress)
        part = min(math.floor(progress * 2 * self.cycles), 2 * self.cycles - 1)
        self.active.fill_(part % 2)  # even parts train RGB (flow mines), odd parts flow
        self.apply_freeze()
