"""Thin ``Method`` base plus the two helpers momentum methods share.

A method owns the backbone and its pre-training heads and turns a collated batch into a loss.
The engine builds ``METHODS[name](backbone, **kwargs)``, the dataset recipe
``RECIPES[method.recipe](..., **method.recipe_overrides)``, calls ``training_step`` (or
``forward``, the same thing, so a ``DistributedDataParallel`` wrapper works) and, after every
optimiser step, ``on_after_optimizer_step(progress)`` with progress in [0, 1].
The pre-trained backbone is ``method.backbone`` (state-dict prefix ``backbone.``).

Everything else the engine or the evaluation reads is an optional hook declared here with a safe
default (listed in docs/architecture.md, "Method contract"); the app never discovers hooks with
``getattr`` / ``hasattr``. A method overrides only the hooks it needs.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class Method(nn.Module):
    """Base of every pre-training method (see docs/architecture.md, "Method contract")."""

    recipe: ClassVar[str] = "two_clips"
    recipe_overrides: ClassVar[dict[str, Any]] = {}
    # modules registered under two names, as state-dict prefixes {alias: kept}, e.g.
    # {"rgb.backbone.": "backbone."}: ``state_dict`` stores them once (under ``kept``) and
    # ``load_state_dict`` restores the alias, so files that still hold both load as well
    state_aliases: ClassVar[dict[str, str]] = {}
    # language-supervised (class texts, zero-shot scores): True only for a method that
    # overrides ``set_class_texts`` and ``zero_shot_logits``
    matches_text: ClassVar[bool] = False
    # class labels whose videos never reach the loss (zero-shot protocol), index = label
    held_out: Sequence[int] = ()
    # the class names of the texts the method was built with (index = label); None: the
    # dataset's class names
    class_names: list[str] | None = None

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        feature_dim = getattr(backbone, "feature_dim", None)
        methods = ("forward_features", "forward_head")
        if not isinstance(feature_dim, int) or not all(hasattr(backbone, m) for m in methods):
            raise TypeError(
                f"{type(self).__name__}: backbone {type(backbone).__name__} must have an int "
                "'feature_dim', 'forward_features' and 'forward_head' (Backbone contract)"
            )
        self.backbone = backbone
        self.feature_dim: int = feature_dim

    def training_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """batch -> {"loss": scalar with grad, other scalar logs (detached)}."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.training_step(batch)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``nn.Module.state_dict`` without the :attr:`state_aliases` duplicates."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        aliases = tuple(prefix + alias for alias in self.state_aliases)
        for key in [k for k in state if aliases and k.startswith(aliases)]:
            del state[key]
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``; an absent :attr:`state_aliases` entry is read from
        the prefix it duplicates (a file written by :meth:`state_dict`)."""
        state = OrderedDict(state_dict)
        for alias, kept in self.state_aliases.items():
            for key in [k for k in state_dict if k.startswith(kept)]:
                state.setdefault(alias + key[len(kept) :], state_dict[key])
        metadata = getattr(state_dict, "_metadata", None)
        if metadata is not None:  # BatchNorm & co. read their version from it
            state._metadata = metadata  # type: ignore[attr-defined]
        return super().load_state_dict(state, strict=strict, assign=assign)

    def on_after_optimizer_step(self, progress: float) -> None:
        """Hook for momentum updates; ``progress`` = finished steps / total steps."""
        check_progress(progress)

    def negative_queues(self) -> dict[str, int]:
        """Queues of past keys that serve as negatives *without* masking the query's own video:
        ``{config field under "method.": queue length}``. Default: none.

        The engine warns when one is longer than the training set: after an epoch the queue
        then holds stale keys of the query's own video, which the loss pushes away
        (``vidssl.app.train.build.warn_long_queues``).
        """
        return {}

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter-name prefix -> learning-rate multiplier (the longest matching prefix wins, 1
        for the rest). Default: none, every parameter at the base rate.

        Read by the engine's optimiser (``vidssl.app.train.optim.apply_lr_multipliers``), e.g.
        X-CLIP's x1000 TWS / x100 new modules over CLIP's weights.
        """
        return {}

    def constant_lr_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes whose learning rate stays at its base value (times any
        multiplier) for the whole run: no warm-up, no decay. Default: none.

        Read by the engine's optimiser and schedule (``vidssl.app.train.optim``,
        ``vidssl.app.train.schedule``), e.g. SimSiam's predictor with ``fix_predictor_lr``
        (SimSiam Sec. 4.2, Table 1d).
        """
        return ()

    def train_item_filter(self) -> Callable[[Any], bool] | None:
        """A predicate ``item -> keep?`` over the training set's index items (``.label``,
        ``.path``), or None (default) to train on every video.

        The engine drops the rejected videos before any rank samples them (X-CLIP's zero-shot
        protocol removes its held-out classes this way) and refuses a filter that rejects all.
        """
        return None

    def set_class_texts(self, texts: Sequence[str]) -> None:
        """Set one text per class (index = label); only for ``matches_text`` methods.

        The engine passes the training set's class names when ``method.class_texts`` is not
        configured; ``vidssl eval closed-set / zeroshot`` passes the test set's.
        """
        raise NotImplementedError(
            f"{type(self).__name__} is not language-supervised (matches_text=False): "
            "it has no class texts to set"
        )

    def zero_shot_logits(self, x: Tensor) -> Tensor:
        """x: (N, C, T, H, W) -> (N, K) scores against every class text; only for
        ``matches_text`` methods (``vidssl eval closed-set / zeroshot``)."""
        raise NotImplementedError(
            f"{type(self).__name__} is not language-supervised (matches_text=False): "
            "it cannot score videos against class texts"
        )

    def two_views(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The two ``(N, C, T, H, W)`` views of ``batch["views"]``, validated."""
        name = type(self).__name__
        if "views" not in batch:
            raise KeyError(
                f"{name}: batch has no 'views' (keys: {sorted(batch)}); use a two-view recipe"
            )
        views = batch["views"]
        if not isinstance(views, list | tuple) or len(views) != 2:
            count = len(views) if isinstance(views, list | tuple) else type(views).__name__
            raise ValueError(f"{name}: batch['views'] must be a list of 2 tensors, got {count}")
        v1, v2 = views
        if v1.ndim != 5 or v1.shape != v2.shape:
            raise ValueError(
                f"{name}: batch['views'] must hold two (N, C, T, H, W) tensors of one shape, "
                f"got {tuple(v1.shape)} and {tuple(v2.shape)}"
            )
        return v1, v2


def check_progress(progress: float) -> None:
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"on_after_optimizer_step: progress must be in [0, 1], got {progress}")


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with ``requires_grad=False`` (a momentum / target network)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """xi <- m * xi + (1 - m) * theta for every parameter (CSTP eq. 2; MoCo eq. 2; BYOL eq. 1).

    Buffers (BN running statistics) are left alone: the target keeps its own, as in MoCo.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    for xi, theta in zip(target.parameters(), online.parameters(), strict=True):
        xi.mul_(momentum).add_(theta.detach(), alpha=1.0 - momentum)


def cosine_momentum(base: float, final: float, progress: float) -> float:
    """BYOL's schedule (Grill et al. 2020, Sec. 3.2): tau = final - (final - base) * (cos(pi p) + 1) / 2.

    ``base`` at progress 0, ``final`` at progress 1.
    """
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
