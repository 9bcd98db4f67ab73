"""CVTCL (Wang et al.): RGB + optical-flow co-training with local temporal contrast.

One MoCo per stream (``vidssl.methods.MoCo``); the flow backbone is ``create_backbone(
flow_backbone, in_channels=2, width=flow_width)``. Input (``two_stream_sub_clips``, both
streams): the global clip g and its second augmentation g^a (the paper's 32-frame clip, sec.
3.2), then the sub-clips s1..s4 cut from inside g's span and s1^a.

- ``stage="init"`` (sec. 2.4 step 1): L1 = alpha L_InfoNCE + beta L_LTCL, summed over the
  streams (no shared parameter). L_InfoNCE (eq. 1) is plain MoCo: query g, key g^a, the queue
  of global keys as negatives, own-video entries included (the authors' ``InfoNCE`` model).
  L_LTCL = L_local (eq. 6) + L_LT (eq. 7) on query s1, keys s1^a, s2..s4 (``use_local``,
  ``use_lt``: Table 1); in L_local own-video entries are dropped from the negatives.
- ``stage="cotrain"`` (step 2): L2 = alpha L_RF + beta L_LTCL (LTCL for ``cotrain_ltcl``,
  Table 2: RGB). ``2 * cycles`` equal parts of the run: even parts train RGB while the frozen
  flow stream (``requires_grad_(False)``) mines ``topk`` neighbours (eqs. 2-5), odd parts the
  reverse. L_RF is CoCLR's multi-instance InfoNCE; positives: the key of g^a, the mined rows
  and the queue entries of the query's own video (never mined).

Co-training start and miner: CoCLR's released code (Han et al., NeurIPS 2020,
github.com/TengdaHan/CoCLR ``main_coclr.py``, kept by the CVTCL authors' ``local_coclr.py``;
the paper says only "the flow samples are fed to the encoder", sec. 2.4). Each part starts as
a CoCLR run from ``--pretrain``: the trained stream's key encoder := its query encoder
("update both q and k with q"), both queues refilled from empty. The miner is the frozen
stream's query encoder (CoCLR's ``sampler``) in eval mode ("the sampler is always fixed"),
applied to g^a; its outputs fill the memory it mines, and mining starts once it is full.

Memory (departure): no separate bank of all videos; the two queues are written together (row
j of both: one clip, ``queue_index[j]`` its video), ``queue_size`` >= the training set. Each
backbone is stored once (``backbone.``, ``flow_backbone.``; ``Method.state_aliases``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl import dist
from vidssl.data.two_stream import GLOBAL_VIEWS
from vidssl.losses import moco_loss
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
from vidssl.models.backbones.base import pooled_features

STREAMS: tuple[str, str] = ("rgb", "flow")
VIEW_KEYS: dict[str, str] = {"rgb": "views", "flow": "flow_views"}
NUM_SUB = 4  # sub-clips s1..s4 (sec. 2.3)
# buffers not taken from ``init_checkpoint``: the co-training memory restarts empty
_FRESH = ("rgb.queue", "rgb.queue_ptr", "flow.queue", "flow.queue_ptr", "queue_index", "active")


class CVTCL(Method):
    recipe: ClassVar[str] = "two_stream_sub_clips"
    recipe_overrides: ClassVar[dict[str, Any]] = {"num_clips": NUM_SUB}
    state_aliases: ClassVar[dict[str, str]] = {
        "rgb.backbone.": "backbone.",
        "flow.backbone.": "flow_backbone.",
    }
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
        moco = dict(temperature=temperature, queue_size=queue_size, momentum=momentum)
        moco |= dict(hidden_dim=hidden_dim, out_dim=out_dim, shuffle_bn=shuffle_bn)
        self.flow_backbone = create_backbone(flow_backbone, width=flow_width, in_channels=2)
        self.rgb = MoCo(backbone, **moco)
        self.flow = MoCo(self.flow_backbone, **moco)
        self.register_buffer("queue_index", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("active", torch.zeros((), dtype=torch.long))  # 0 RGB, 1 flow
        if init_checkpoint is not None:
            self.load_init(init_checkpoint)
            self.start_part()

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

    # ---- encoders

    def views(self, name: str, batch: dict[str, Any]) -> list[Tensor]:
        views = batch[VIEW_KEYS[name]]
        if len(views) != GLOBAL_VIEWS + NUM_SUB + 1:
            raise ValueError(f"CVTCL: batch[{VIEW_KEYS[name]!r}] must hold g, g^a, s1..s4, s1^a")
        return views

    def encode_global(self, name: str, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Query of g (N, D) with grad and the momentum key of g^a (N, D), unit-norm."""
        g, g_a = self.views(name, batch)[:GLOBAL_VIEWS]
        s = self.streams()[name]
        return s.projector(pooled_features(s.backbone, g)), s.keys(g_a)

    def ltcl(
        self, name: str, batch: dict[str, Any], queue: Tensor, own: Tensor
    ) -> dict[str, Tensor]:
        """L_local (eq. 6) and / or L_LT (eq. 7): query s1, keys [s1^a, s2, s3, s4]."""
        if not (self.use_local or self.use_lt):
            return {}
        sub = self.views(name, batch)[GLOBAL_VIEWS:]  # s1..s4, s1^a
        s = self.streams()[name]
        q = s.projector(pooled_features(s.backbone, sub[0]))  # (N, D)
        stacked = torch.cat([sub[NUM_SUB], *sub[1:NUM_SUB]])  # 4 x (N, ...) -> (4N, ...)
        keys = s.keys(stacked).reshape(NUM_SUB, q.shape[0], -1).transpose(0, 1)  # (N, 4, D)
        out = {}
        if self.use_local:
            out["local"] = local_loss(q, keys, queue, self.temperature, exclude=own)
        if self.use_lt:
            out["lt"] = local_temporal_loss(q, keys[:, 0], keys[:, 1:], self.temperature)
        return out

    @torch.no_grad()
    def mining_features(self, name: str, x: Tensor) -> Tensor:
        """CoCLR's ``sampler``: the stream's query encoder in eval mode. x -> (N, D) unit."""
        s = self.streams()[name]
        modes = [(m, m.training) for m in (s.backbone, s.projector)]
        for m, _ in modes:
            m.eval()
        try:
            return F.normalize(s.projector(pooled_features(s.backbone, x)), dim=1)
        finally:
            for m, mode in modes:
                m.train(mode)

    def own_video(self, index: Tensor) -> Tensor:
        """(N,) video indices -> (N, Q) bool: queue rows holding the same video."""
        return index.to(self.queue_index.device)[:, None] == self.queue_index[None, :]

    # ---- losses

    def init_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        index = torch.as_tensor(batch["item"])  # the video each clip came from
        own = self.own_video(index)  # (N, Q), for L_local only
        logs: dict[str, Tensor] = {}
        total, new_keys = 0.0, {}
        for name, s in self.streams().items():
            q, k = self.encode_global(name, batch)
            queue = s.queue.clone()  # enqueued in place below
            nce = moco_loss(q, k, queue, self.temperature)  # eq. 1, plain MoCo
            parts = self.ltcl(name, batch, queue, own)
            total = total + self.alpha * nce + self.beta * sum(parts.values(), torch.zeros(()))
            logs |= {f"{name}_nce": nce.detach()}
            logs |= {f"{name}_{part}": v.detach() for part, v in parts.items()}
            new_keys[name] = k
        self.enqueue(new_keys, index)
        return {"loss": total, **logs}

    def cotrain_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        index = torch.as_tensor(batch["item"])  # the video each clip came from
        trained, frozen = STREAMS[int(self.active)], STREAMS[1 - int(self.active)]
        own = self.own_video(index)  # (N, Q)
        q, k = self.encode_global(trained, batch)
        z = self.mining_features(frozen, self.views(frozen, batch)[1])  # g^a: (N, D)
        pos = own.clone()  # own-video entries: positives of L_RF, never mined
        full = bool((self.queue_index >= 0).all())
        if full and self.topk > 0:
            mined = topk_neighbours(z, self.streams()[frozen].queue, self.topk, exclude=own)
            pos |= indices_to_mask(mined, own.shape[1])  # (N, K) -> (N, Q)
        queue = self.streams()[trained].queue.clone()
        rf = multi_instance_nce(q, k, queue, pos, self.temperature)
        parts = self.ltcl(trained, batch, queue, own) if trained in self.cotrain_ltcl else {}
        loss = self.alpha * rf + self.beta * sum(parts.values(), torch.zeros(()))
        self.enqueue({trained: k, frozen: z}, index)
        logs = {f"{trained}_{part}": v.detach() for part, v in parts.items()}
        extra = {"active": self.active.float(), "memory_full": self.active.new_tensor(full).float()}
        return {"loss": loss, f"{trained}_rf": rf.detach(), **extra, **logs}

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

    @torch.no_grad()
    def start_part(self) -> None:
        """A co-training part starts as a CoCLR run from ``--pretrain``: the trained stream's
        key encoder := its query encoder, both queues refilled from empty (random rows)."""
        s = self.streams()[STREAMS[int(self.active)]]
        s.key_backbone.load_state_dict(s.backbone.state_dict())
        s.key_projector.load_state_dict(s.projector.state_dict())
        for m in self.streams().values():
            m.queue.copy_(F.normalize(torch.randn_like(m.queue), dim=1))
            m.queue_ptr.zero_()
        self.queue_index.fill_(-1)

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
        if self.stage == "init":
            return
        part = min(math.floor(progress * 2 * self.cycles), 2 * self.cycles - 1)
        if part % 2 != int(self.active):  # even parts train RGB (flow mines), odd parts flow
            self.active.fill_(part % 2)
            self.start_part()
        self.apply_freeze()
