"""``model.sync_bn``: batch statistics over all ranks, on GPU (NCCL) and on CPU (gloo).

PyTorch's ``nn.SyncBatchNorm`` only runs on accelerators (its kernels have no CPU version), so
on CPU the BatchNorm layers are replaced by :class:`CpuSyncBatchNorm`, which all-gathers each
rank's per-channel ``(mean, M2 = sum (x - mean)^2, count)`` with
``vidssl.dist.all_gather_with_grad`` and combines them (Chan et al.'s parallel variance, which
avoids the cancellation of ``E[x^2] - E[x]^2``):

    mean = sum_r n_r mean_r / N,    var = sum_r (M2_r + n_r (mean_r - mean)^2) / N

Gradients flow through the gathered statistics, so the result equals BatchNorm over the global
batch, forward and backward. Running statistics use the unbiased variance, as
``nn.BatchNorm`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from vidssl import dist


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm (any input rank >= 2) whose training statistics span every process."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f"CpuSyncBatchNorm expects (N, C, ...) input, got {tuple(input.shape)}"
            )

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.get_world_size() > 1):
            return super().forward(input)
        c = input.shape[1]
        shape = [1, c] + [1] * (input.dim() - 2)  # (C,) -> (1, C, 1, ...)
        dims = [0, *range(2, input.dim())]
        x = (
            input if input.dtype == torch.float64 else input.float()
        )  # bf16 / fp16 -> fp32 statistics
        local_mean = x.mean(dims)  # (C,)
        local_m2 = (x - local_mean.view(shape)).square().sum(dims)  # (C,)
        local = torch.cat([local_mean, local_m2, x.new_tensor([input.numel() // c])])  # (2C+1,)
        stats = dist.all_gather_with_grad(local[None])  # (W, 2C+1)
        means, m2s, counts = (
            stats[:, :c],
            stats[:, c : 2 * c],
            stats[:, 2 * c :],
        )  # (W, C), (W, C), (W, 1)
        total = counts.sum()
        mean = (counts * means).sum(0) / total  # (C,)
        var = (m2s + counts * (means - mean).square()).sum(0) / total  # biased, as BN normalises
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), float(total.detach()))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * count / max(count - 1.0, 1.0)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        out = CpuSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias  # the same Parameters
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_cpu_sync(child))
    return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer of ``model`` synchronised across ranks (call before DDP wrapping)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _to_cpu_sync(model)
