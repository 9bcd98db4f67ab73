"""CSTP (Zhang et al., AAAI 2022): contrastive learning jointly with spatio-temporal pretext tasks.

Two clips ``v, v'`` of a video come from the STOR two-step overlap sampling (recipe
``"stor"``). Their features ``y = f(v)``, ``y' = f(v')`` feed (CSTP Fig. 4, sec. "Full Scheme
of CSTP"):

- the contrastive scheme ``contrastive`` (SimCLR / MoCo / BYOL / SimSiam, Table 3) -> L_ctr;
  the existing method classes of ``vidssl.methods`` are composed, not copied;
- a playback-rate head on ``y`` -> L_pcls and a rotation head on ``y`` -> L_rcls;
- a spatial and a temporal overlap-rate head on ``cat(y, y')`` -> L_ocls, eq. (4):
  ``L_ocls = l_s CE_s + l_t CE_t`` with ``overlap_weights = (l_s, l_t)``. (Eq. (4)'s text feeds
  ``y`` to the spatial head and ``y'`` to the temporal one; the full scheme and Fig. 4 feed the
  concatenation to both, which is what we do.)

The joint loss is eq. (5): ``L = λ_ctr L_ctr + λ_pcls L_pcls + λ_rcls L_rcls + λ_ocls L_ocls``
with CSTP's λ_ctr = 0.1 and the others 1 (appendix). L_ctr is on the scale of eqs. (1) and (3),
so that λ_ctr weighs what the paper weighs (``CTR_SCALE``): BYOL's own loss L + L~ (range
[0, 8]) enters as 0.25 (L + L~) = 1 - mean cos, eq. (3) as a batch mean averaged over the two
directions, plus 1. A term with λ = 0 is switched off: its
heads (or contrastive networks) are not built and not computed, so the rows of CSTP Tables 2
and 3 are configs. All heads are single linear layers; every loss is a softmax cross-entropy.

Feature sharing: the composed contrastive method gets a :class:`SharedFeatures` stand-in for
the backbone that returns the features CSTP already computed for the same view tensors, so each
view passes through the online backbone once per step (its momentum / target copies still run
on the pixels). The shared parameters then appear twice in ``state_dict()`` (``backbone.*`` and
``ctr.backbone.inner.*``); ``torch.save`` stores shared tensors once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vidssl.data.pretext import (
    DEFAULT_OVERLAP_RATES,
    DEFAULT_PACES,
    NUM_ROTATIONS,
    check_paces,
    check_rates,
)
from vidssl.losses.pretext import pretext_accuracy, pretext_cross_entropy
from vidssl.methods.base import Method, check_progress
from vidssl.methods.byol import BYOL
from vidssl.methods.moco import MoCo
from vidssl.methods.pretext import ClassifierHeads, batch_labels
from vidssl.methods.simclr import SimCLR
from vidssl.methods.simsiam import SimSiam
from vidssl.models.backbones.base import pooled_features

# contrastive scheme name -> method class (CSTP Table 3)
CONTRASTIVE: dict[str, type[Method]] = {
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "simsiam": SimSiam,
}

# contrastive scheme -> factor putting the composed method's loss on the scale of CSTP's L_ctr,
# which eq. (5) weighs with λ_ctr = 0.1 (appendix). Eq. (3) (BYOL, SimSiam) is one direction,
# -sum_i sim(q_i, z'_i); eq. (1) (SimCLR, MoCo) one InfoNCE term per sample. We take batch means
# (as for the cross-entropy terms L_pcls, L_rcls, L_ocls) and average the two directions where a
# scheme symmetrises (each direction weighs 1/2, together eq. (3)'s 1; the views are
# exchangeable, so the expected gradient is eq. (3)'s). BYOL's method loss is its L + L~ = sum over both
# directions of mean(2 - 2 cos), 4 x (1 - mean cos): 0.25 (L + L~) = 1 - mean cos, i.e. eq. (3)
# + 1 (the constant changes no gradient). Unscaled, λ_ctr = 0.1 would weigh BYOL's term 4x what
# the paper weighs (0.4). SimSiam's loss already is 0.5 (D(p1, z2) + D(p2, z1)) with D = -cos,
# eq. (3)'s scale; NT-Xent (SimCLR) and MoCo's loss are eq. (1)'s per-sample cross-entropy.
CTR_SCALE: dict[str, float] = {"simclr": 1.0, "moco": 1.0, "byol": 0.25, "simsiam": 1.0}

# clip-level task -> its term in eq. (5)
CLIP_TERMS: dict[str, str] = {"pace": "pcls", "rotation": "rcls"}
OVERLAP_TASKS: tuple[str, str] = ("overlap_s", "overlap_t")


class SharedFeatures(nn.Module):
    """Backbone stand-in: ``pooled_features(shared, x)`` returns the features registered for the
    tensor object ``x`` (see :meth:`sharing`), else runs the wrapped backbone. x: (N, C, T, H, W)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.inner = backbone
        self.feature_dim: int = backbone.feature_dim
        self.known: list[tuple[Tensor, Tensor]] = []

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> the registered features (N, feature_dim), else the wrapped
        backbone's map."""
        for clip, feats in self.known:
            if clip is x:
                return feats
        return self.inner.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Registered features pass through; a map goes through the wrapped backbone's head."""
        if any(x is feats for _, feats in self.known):
            return x
        return self.inner.forward_head(x, pre_logits=pre_logits)

    @contextlib.contextmanager
    def sharing(self, *pairs: tuple[Tensor, Tensor]) -> Iterator[None]:
        """Within the block, ``pooled_features(self, clip)`` is ``feats`` for each (clip, feats)."""
        self.known = list(pairs)
        try:
            yield
        finally:
            self.known = []


class CSTP(Method):
    recipe: ClassVar[str] = "stor"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        contrastive: str = "byol",
        contrastive_kwargs: dict[str, Any] | None = None,
        lambda_ctr: float = 0.1,
        lambda_pcls: float = 1.0,
        lambda_rcls: float = 1.0,
        lambda_ocls: float = 1.0,
        overlap_weights: tuple[float, float] = (1.0, 1.0),
        paces: Sequence[int] = DEFAULT_PACES,
        overlap_rates: Sequence[float] = DEFAULT_OVERLAP_RATES,
    ) -> None:
        super().__init__(backbone)
        # eq. (5) weights by term
        self.lambdas = {
            "ctr": lambda_ctr,
            "pcls": lambda_pcls,
            "rcls": lambda_rcls,
            "ocls": lambda_ocls,
        }
        for term, value in self.lambdas.items():
            if value < 0:
                raise ValueError(f"method.lambda_{term}: must be >= 0, got {value}")
        if len(overlap_weights) != 2 or min(overlap_weights) < 0:
            raise ValueError(f"method.overlap_weights: need (l_s, l_t) >= 0, got {overlap_weights}")
        if contrastive not in CONTRASTIVE:
            raise ValueError(
                f"method.contrastive={contrastive!r}: expected one of {sorted(CONTRASTIVE)}"
            )
        paces = check_paces(paces, "method.paces")
        rates = check_rates(overlap_rates, "method.overlap_rates")
        self.recipe_overrides = {"paces": paces, "overlap_rates": rates}
        self.contrastive = contrastive

        self.ctr: Method | None = None
        if lambda_ctr > 0:
            try:
                self.ctr = CONTRASTIVE[contrastive](
                    SharedFeatures(backbone), **(contrastive_kwargs or {})
                )
            except TypeError as err:
                raise ValueError(f"method.contrastive_kwargs ({contrastive}): {err}") from err
        clip_classes = {"pace": len(paces), "rotation": NUM_ROTATIONS}
        self.clip_heads = ClassifierHeads(
            self.feature_dim,
            {t: k for t, k in clip_classes.items() if self.lambdas[CLIP_TERMS[t]] > 0},
        )
        self.overlap_weights = dict(zip(OVERLAP_TASKS, (float(w) for w in overlap_weights)))
        on = lambda_ocls > 0
        self.pair_heads = ClassifierHeads(
            2 * self.feature_dim,
            {t: len(rates) for t, w in self.overlap_weights.items() if on and w > 0},
        )
        if self.ctr is None and not self.clip_heads.heads and not self.pair_heads.heads:
            raise ValueError("CSTP: every loss term is switched off (all lambdas are 0)")

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        v1, v2 = self.two_views(batch)
        pair_tasks = list(self.pair_heads.heads)
        y1 = pooled_features(self.backbone, v1)  # (N, D)
        y2 = None
        if self.ctr is not None or pair_tasks:
            y2 = pooled_features(self.backbone, v2)  # (N, D)
        terms: dict[str, Tensor] = {}
        logs: dict[str, Tensor] = {}

        if self.ctr is not None:
            shared: SharedFeatures = self.ctr.backbone  # type: ignore[assignment]
            with shared.sharing((v1, y1), (v2, y2)):
                out = self.ctr.training_step({"views": [v1, v2]})
            terms["ctr"] = CTR_SCALE[self.contrastive] * out.pop("loss")  # eq. (1) / (3) scale
            logs.update({f"ctr_{k}": v.detach() for k, v in out.items()})

        clip_tasks = list(self.clip_heads.heads)
        if clip_tasks:
            labels = batch_labels(batch, clip_tasks, "CSTP")
            logits = self.clip_heads(y1)
            for task, value in pretext_cross_entropy(logits, labels).items():
                terms[CLIP_TERMS[task]] = value
            logs.update({f"acc_{t}": v for t, v in pretext_accuracy(logits, labels).items()})

        if pair_tasks:
            labels = batch_labels(batch, pair_tasks, "CSTP")
            logits = self.pair_heads(torch.cat([y1, y2], dim=1))  # (N, 2D)
            losses = pretext_cross_entropy(logits, labels)
            weighted = [self.overlap_weights[t] * v for t, v in losses.items()]
            terms["ocls"] = torch.stack(weighted).sum()  # eq. (4)
            logs.update({f"loss_{t}": v.detach() for t, v in losses.items()})
            logs.update({f"acc_{t}": v for t, v in pretext_accuracy(logits, labels).items()})

        loss = torch.stack([self.lambdas[t] * v for t, v in terms.items()]).sum()  # eq. (5)
        logs.update({f"loss_{term}": value.detach() for term, value in terms.items()})
        return {"loss": loss, **logs}

    def negative_queues(self) -> dict[str, int]:
        """The composed scheme's queues (MoCo), under ``method.contrastive_kwargs``."""
        if self.ctr is None:
            return {}
        return {f"contrastive_kwargs.{k}": v for k, v in self.ctr.negative_queues().items()}

    def constant_lr_prefixes(self) -> tuple[str, ...]:
        """The composed scheme's, under ``ctr.`` (e.g. SimSiam's fixed predictor lr)."""
        if self.ctr is None:
            return ()
        return tuple(f"ctr.{prefix}" for prefix in self.ctr.constant_lr_prefixes())

    def on_after_optimizer_step(self, progress: float) -> None:
        check_progress(progress)
        if self.ctr is not None:
            self.ctr.on_after_optimizer_step(progress)
