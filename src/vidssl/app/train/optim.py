"""Optimisers: SGD (momentum), Adam, AdamW and LARS, with norm / bias parameters excluded.

Parameter groups. Conv and linear weights (``ndim > 1``) get weight decay; biases and
normalisation parameters (``ndim <= 1``) get none and are flagged ``lars_exclude`` so LARS
updates them with plain momentum SGD, as SimCLR / BYOL / CVRL do. Frozen parameters (momentum
encoders, ``requires_grad=False``) are left out.

LARS (You et al. 2017, "Large Batch Training of Convolutional Networks", Alg. 1), CVRL's
optimiser. For a weight tensor w with gradient g, weight decay beta and trust coefficient eta:

    d     = g + beta * w
    trust = eta * ||w|| / ||d||          (1 when either norm is 0)
    v     = m * v + trust * d
    w     = w - lr * v

Departure from the paper's Alg. 1: the global learning rate multiplies the velocity at the
update (PyTorch SGD convention) rather than entering the velocity, so a learning-rate schedule
does not rescale past momentum; with a constant learning rate the two are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from vidssl.config import OptimConfig
from vidssl.methods.base import Method


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weights (ndim > 1) and undecayed norms / biases (ndim <= 1)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]
    return [g for g in groups if g["params"]]


def apply_lr_multipliers(
    model: nn.Module, groups: list[dict[str, Any]], base_lr: float
) -> list[dict[str, Any]]:
    """Split ``groups`` by a method's ``lr_multipliers()`` and ``constant_lr_prefixes()``
    (``Method`` hooks; other modules and methods without either keep ``groups``).

    ``lr_multipliers()`` maps parameter-name prefixes to learning-rate multipliers (the
    longest matching prefix wins, 1 otherwise), e.g. X-CLIP's x1000 TWS / x100 new modules
    (seed 004, Sec. 4.2). Each part keeps its group's weight decay and gets ``lr = base_lr *
    multiplier`` and ``lr_mult``; the schedule scales every group's own base lr, so the ratios
    hold at every step. Parameters under a ``constant_lr_prefixes()`` prefix go to parts with
    ``constant_lr=True``, which the schedule leaves at their base lr (SimSiam's fixed
    predictor lr).
    """
    is_method = isinstance(model, Method)
    multipliers = model.lr_multipliers() if is_method else {}
    constant = model.constant_lr_prefixes() if is_method else ()
    if not multipliers and not constant:
        return groups
    prefixes = sorted(multipliers.items(), key=lambda kv: -len(kv[0]))
    policy = {
        id(p): (
            next((m for prefix, m in prefixes if name.startswith(prefix)), 1.0),
            name.startswith(constant),  # False for no prefixes
        )
        for name, p in model.named_parameters()
    }
    out = []
    for group in groups:
        parts: dict[tuple[float, bool], list[Tensor]] = {}
        for p in group["params"]:
            parts.setdefault(policy[id(p)], []).append(p)
        out += [
            {**group, "params": ps, "lr": base_lr * m, "lr_mult": m, "constant_lr": fixed}
            for (m, fixed), ps in parts.items()
        ]
    return out


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling on top of momentum SGD (see the module docstring).

    Groups with ``lars_exclude=True`` (norms, biases) skip the trust ratio; their
    ``weight_decay`` is applied as given (0 from :func:`param_groups`).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta < 0:
            raise ValueError(
                f"LARS: lr={lr}, momentum={momentum}, weight_decay={weight_decay}, eta={eta} must be >= 0"
            )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = (
                    p.grad.add(p, alpha=group["weight_decay"])
                    if group["weight_decay"]
                    else p.grad.clone()
                )
                if not group["lars_exclude"]:
                    w_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    usable = (w_norm > 0) & (d_norm > 0)
                    trust = torch.where(
                        usable, group["eta"] * w_norm / d_norm, torch.ones_like(w_norm)
                    )
                    d.mul_(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = d.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(d)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def _sgd(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def _adam(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def _adamw(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def _lars(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, eta=cfg.lars_eta)


# optim.name -> factory(param groups, config); weight decay is set per group
OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "lars": _lars,
}


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg.name`` over ``model``'s trainable parameters (norms / biases undecayed)."""
    groups = apply_lr_multipliers(model, param_groups(model, cfg.weight_decay), cfg.lr)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return OPTIMIZERS[cfg.name](groups, cfg)
