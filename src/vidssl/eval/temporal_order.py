"""``temporal-order``: does the frozen representation know which way time runs?

Every video is encoded twice, its clips played forwards (class 0) and backwards (class 1:
each clip's frames reversed before the backbone); a linear classifier (the linear probe's
settings, :class:`vidssl.eval.frozen.LinearSettings`) is trained on the training videos'
two features and tested on the test videos'. A representation blind to motion direction
(one that sees a bag of frames) scores chance, 50 %; one that encodes the arrow of time
scores near 100 %. Its label set is ``order`` (not the dataset's classes). The idea follows
the arrow-of-time probes of Wei et al. 2018 ("Learning and Using the Arrow of Time").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vidssl.eval.frozen import LinearSettings, linear_probe
from vidssl.eval.protocol_base import EvalJob, Outcome, Protocol


class TemporalOrder(Protocol):
    """A linear probe for forwards vs backwards clips on frozen features."""

    name = "temporal-order"
    title = "Temporal order probe on frozen features: forwards vs backwards top-1"
    prefix = "temporal-order "
    columns = ("top1",)
    settings = LinearSettings
    in_all = False  # added after the saved `eval all` outputs; ask for it by name

    def run(self, job: EvalJob, settings: Any) -> list[Outcome]:
        data = {}
        for subset in ("train", "test"):
            fwd, bwd = job.features(subset), job.features(subset, reverse=True)
            x = torch.cat([fwd.feats, bwd.feats])  # (2N, D): forwards first, then backwards
            y = torch.cat([torch.zeros(len(fwd.feats)), torch.ones(len(bwd.feats))]).long()
            data[subset] = (x, y)
        metrics, info = linear_probe(*data["train"], *data["test"], settings, job.seed)
        metrics.pop("top5", None)  # two classes: top-5 is always 1
        return [Outcome("order", metrics, info)]


class TimeReversed(nn.Module):
    """A backbone that sees every clip played backwards: ``forward_features`` of the clip with
    its frames in reverse order (B, C, T, H, W) -> the backbone's map; ``forward_head`` is the
    backbone's.

    Limitation: on optical-flow input (two-stream ``--stream flow`` / ``both``) only the
    frame order is reversed; the flow of a reversed video would also have its vectors
    negated (and be the backward flow), so there the probe is not a pure arrow-of-time test.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x.flip(2))  # dim 2 is T

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)
