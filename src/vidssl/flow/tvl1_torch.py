"""Batched TV-L1 optical flow in PyTorch (Zach, Pock & Bischof 2007, duality-based scheme).

Many frame pairs are solved at once, on CPU or GPU. The numerical scheme follows OpenCV's
``cv2.optflow.DualTVL1OpticalFlow`` (itself after Sanchez, Meinhardt-Llopis & Facciolo,
IPOL 2013) so that the two agree to a fraction of a pixel:

- grey levels in 0..255 (uint8 input is not rescaled);
- a pyramid of ``nscales`` levels, each ``scale_step`` times the previous one (bilinear, no
  pre-smoothing, pixel-centre aligned), stopping before a level smaller than 16 pixels;
- per level, ``warps`` times: warp ``I1`` and its centred gradient by the current flow
  (bicubic, zero outside the image), linearise the data term
  ``rho(u) = I1w + grad(I1w) . (u - u0) - I0``; then alternate (at most ``outer_iterations`` x
  ``inner_iterations`` steps, stopping when the mean squared flow update falls below
  ``epsilon ** 2``):
    * ``v = TH(u)``: pointwise thresholding of the linearised L1 data term (``lambda * theta``);
    * ``u = v + theta * div(p)`` with backward-difference divergence;
    * ``p = (p + tau/theta * grad(u)) / (1 + tau/theta * |grad(u)|)`` with forward differences;
  a 5x5 median filter of ``u`` opens every outer iteration (OpenCV's ``medianFiltering``);
- the flow is upsampled bilinearly to the next level and multiplied by ``1 / scale_step``.

Every pair keeps its own stopping test: a pair that has converged leaves the (compacted)
batch while the others continue, so the result of a pair does not depend on the batch.

Defaults are OpenCV's (``DualTVL1OpticalFlow_create()``, checked against OpenCV 5.0 getters):
tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5, epsilon 0.01, inner iterations 30, outer
iterations 10, scale step 0.8, median filter 5. The scale step departs from the 0.5 of the
IPOL reference code (and of the brief): 0.8 is what ``DualTVL1OpticalFlow_create()`` runs
when called without arguments, the usual way TV-L1 flow for CoCLR-style pipelines is made.
Known remaining differences from OpenCV: its ``remap`` rounds sample positions to 1/32 pixel
and it sums the stopping error in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidssl.flow import FlowFn

# below this squared gradient magnitude the data term gives no direction (float32 epsilon)
_FLT_EPS = float(torch.finfo(torch.float32).eps)
# OpenCV stops building the pyramid before a level narrower than this (pixels)
_MIN_LEVEL_SIZE = 16


@dataclass(frozen=True)
class TVL1Params:
    """TV-L1 parameters, OpenCV's names and defaults (``lam`` is OpenCV's ``lambda``)."""

    tau: float = 0.25
    lam: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.scale_step < 1.0:
            raise ValueError(f"TVL1Params.scale_step must be in (0, 1), got {self.scale_step}")
        if self.nscales < 1 or self.warps < 1:
            raise ValueError("TVL1Params.nscales and TVL1Params.warps must be >= 1")
        if self.median_filtering not in (0, 1, 3, 5):
            raise ValueError(
                f"TVL1Params.median_filtering must be 0, 1, 3 or 5, got {self.median_filtering}"
            )


# -- finite differences (x: (N, C, H, W)) ---------------------------------------------------


def centred_gradient(x: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences ``0.5 * (x[i+1] - x[i-1])``, edges replicated: (N, C, H, W) x 2."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (xp[:, :, 1:-1, 2:] - xp[:, :, 1:-1, :-2])
    dy = 0.5 * (xp[:, :, 2:, 1:-1] - xp[:, :, :-2, 1:-1])
    return dx, dy


def forward_gradient(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences ``x[i+1] - x[i]``, zero on the last column / row: (N, C, H, W) x 2."""
    dx = F.pad(x[:, :, :, 1:] - x[:, :, :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[:, :, 1:, :] - x[:, :, :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: Tensor, py: Tensor) -> Tensor:
    """Backward-difference divergence (the negative adjoint of ``forward_gradient``).

    px, py: (N, C, H, W) -> (N, C, H, W); values before the first column / row count as 0.
    The identity ``<forward_gradient(u), p> = -<u, div p>`` holds for ``px`` zero on the last
    column and ``py`` zero on the last row, which the dual iterates are (as in OpenCV).
    """
    div = px + py
    div[:, :, :, 1:] -= px[:, :, :, :-1]
    div[:, :, 1:, :] -= py[:, :, :-1, :]
    return div


# -- median filter ----------------------------------------------------------------------------
# torch.median over unfolded 5x5 windows costs ~250 ns per pixel on CPU; a pruned
# compare-exchange network over shifted views is 4-5x faster and exact (ties included).


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Comparators (lo, hi) of Batcher's odd-even merge sort for ``n`` (a power of 2) wires."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


# one network step: (wire a, wire b, keep min on a, keep max on b); both False = swap a and b
_Step = tuple[int, int, bool, bool]


@cache
def selection_network(m: int, ranks: tuple[int, ...]) -> tuple[_Step, ...]:
    """A network that leaves the ``ranks``-th smallest of ``m`` values on wires ``ranks``.

    Batcher's sorting network on the next power of two, with the padding wires treated as
    +inf (comparators against them become no-ops or wire swaps), then pruned backwards to
    the comparator outputs that reach the wanted wires.
    """
    n = 1 << max(m - 1, 0).bit_length()
    is_pad = [w >= m for w in range(n)]
    forward: list[tuple[str, int, int]] = []
    for a, b in _batcher_pairs(n):
        if is_pad[b]:
            continue  # min(x, inf) = x stays on a
        if is_pad[a]:
            forward.append(("swap", a, b))
            is_pad[a], is_pad[b] = False, True
            continue
        forward.append(("cmp", a, b))
    needed, steps = set(ranks), []
    for kind, a, b in reversed(forward):
        if kind == "swap":
            needed = {b if w == a else a if w == b else w for w in needed}
            steps.append((a, b, False, False))
        elif a in needed or b in needed:
            steps.append((a, b, a in needed, b in needed))
            needed |= {a, b}
    return tuple(reversed(steps))


def select_ranks(values: list[Tensor], ranks: tuple[int, ...]) -> list[Tensor]:
    """Elementwise order statistics: ``out[r]`` is the ``r``-th smallest of ``values`` at every
    position, for ``r`` in ``ranks`` (other entries of ``out`` are meaningless)."""
    wires = list(values)
    for a, b, keep_min, keep_max in selection_network(len(values), ranks):
        x, y = wires[a], wires[b]
        if not (keep_min or keep_max):
            wires[a], wires[b] = y, x
            continue
        if keep_min:
            wires[a] = torch.minimum(x, y)
        if keep_max:
            wires[b] = torch.maximum(x, y)
    return wires


# after sorting every column and then every row of a 5x5 window, entry (r, c) has at least
# (r+1)(c+1)-1 smaller and (5-r)(5-c)-1 larger entries; the 13 entries that can still be the
# median are these (per row r: the ranks c), and exactly 6 entries lie below them, so the
# window median is the median of the 13.
_MEDIAN5_CANDIDATES: dict[int, tuple[int, ...]] = {
    0: (3, 4),
    1: (2, 3, 4),
    2: (1, 2, 3),
    3: (0, 1, 2),
    4: (0, 1),
}


def median_filter(x: Tensor, size: int) -> Tensor:
    """``size`` x ``size`` median (3 or 5), edges replicated as OpenCV ``medianBlur``.

    x: (N, C, H, W) -> (N, C, H, W)
    """
    n, c, h, w = x.shape
    r = size // 2
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    if size == 3:
        window = [xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)]
        return select_ranks(window, (4,))[4]
    if size != 5:
        raise ValueError(f"median_filter supports sizes 3 and 5, got {size}")
    # sort each vertical run of 5 once; every output column shares it: 5 x (N, C, H, W + 4)
    cols = select_ranks([xp[:, :, i : i + h, :] for i in range(5)], (0, 1, 2, 3, 4))
    candidates: list[Tensor] = []
    for row, ranks in _MEDIAN5_CANDIDATES.items():
        ordered = select_ranks([cols[row][:, :, :, j : j + w] for j in range(5)], ranks)
        candidates += [ordered[k] for k in ranks]
    return select_ranks(candidates, (6,))[6]


# -- resampling -----------------------------------------------------------------------------


def _pixel_grid(n: int, h: int, w: int, device: torch.device) -> Tensor:
    """(N, H, W, 2) pixel coordinates (x, y) of every pixel centre."""
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).expand(n, h, w, 2)


def _normalise(coords: Tensor, h: int, w: int) -> Tensor:
    """Pixel coordinates (x, y) -> grid_sample's [-1, 1] with ``align_corners=True``."""
    scale = torch.tensor(
        [2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=coords.device, dtype=coords.dtype
    )
    return coords * scale - 1.0


def resize_linear(x: Tensor, size: tuple[int, int], scale: tuple[float, float]) -> Tensor:
    """Bilinear resize as OpenCV's ``INTER_LINEAR``: (N, C, H, W) -> (N, C, *size).

    Output pixel ``d`` samples input position ``(d + 0.5) / scale - 0.5`` (clamped to the
    image), with ``scale = (sy, sx)`` given explicitly: ``cv2.resize(src, None, fx, fy)``
    maps with ``fx`` itself, not with the ratio of the rounded sizes.
    """
    n, _, h, w = x.shape
    oh, ow = size
    sy, sx = scale
    ys = (torch.arange(oh, device=x.device, dtype=torch.float32) + 0.5) / sy - 0.5
    xs = (torch.arange(ow, device=x.device, dtype=torch.float32) + 0.5) / sx - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = _normalise(torch.stack((gx, gy), dim=-1), h, w).expand(n, oh, ow, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_bicubic(x: Tensor, flow: Tensor, base: Tensor) -> Tensor:
    """Sample ``x`` at ``base + flow``, bicubic, zero outside the image (OpenCV ``remap``).

    x: (N, C, H, W), flow: (N, 2, H, W), base: (N, H, W, 2) pixel grid -> (N, C, H, W)
    """
    _, _, h, w = x.shape
    coords = base + flow.permute(0, 2, 3, 1)  # (N, 2, H, W) -> (N, H, W, 2)
    grid = _normalise(coords, h, w)
    return F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def pyramid_sizes(h: int, w: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(H, W) of every level, finest first; like OpenCV, sizes round and stop below 16 px."""
    sizes = [(h, w)]
    for _ in range(1, params.nscales):
        ph, pw = sizes[-1]
        nh, nw = round(ph * params.scale_step), round(pw * params.scale_step)
        if nh < _MIN_LEVEL_SIZE or nw < _MIN_LEVEL_SIZE:
            break
        sizes.append((nh, nw))
    return sizes


# -- one pyramid level ------------------------------------------------------------------------


@dataclass
class _Linearised:
    """The data term linearised around the flow of the current warp (all (N, ., H, W)).

    grad_i: (N, 2, H, W) gradient of the warped I1; rho_c: (N, 1, H, W) the constant part
    ``I1w - grad_i . u0 - I0``; inv_grad: (N, 1, H, W) ``1 / |grad_i|^2`` (0 where flat).
    """

    grad_i: Tensor
    rho_c: Tensor
    inv_grad: Tensor

    def take(self, idx: Tensor) -> _Linearised:
        return _Linearised(self.grad_i[idx], self.rho_c[idx], self.inv_grad[idx])


def _primal_dual_step(
    u: Tensor, px: Tensor, py: Tensor, lin: _Linearised, params: TVL1Params
) -> Tensor:
    """One inner iteration, in place on u, px, py (N, 2, H, W); returns (N,) summed |du|^2.

    ``v = TH(u)``: with ``rho = rho_c + grad_i . u`` the pointwise minimiser moves ``u`` by
    ``clamp(-rho / |grad_i|^2, -lambda*theta, +lambda*theta) * grad_i`` (OpenCV's three cases).
    Then ``u = v + theta * div(p)`` and ``p = (p + tau/theta grad u) / (1 + tau/theta |grad u|)``.
    """
    l_t = params.lam * params.theta
    taut = params.tau / params.theta
    rho = lin.rho_c + (lin.grad_i * u).sum(dim=1, keepdim=True)  # (N, 1, H, W)
    step = (-rho * lin.inv_grad).clamp_(-l_t, l_t)
    delta = step * lin.grad_i  # (N, 2, H, W): v - u
    delta.add_(divergence(px, py), alpha=params.theta)  # u_new - u
    u.add_(delta)
    ux, uy = forward_gradient(u)
    norm = torch.sqrt(ux * ux + uy * uy).mul_(taut).add_(1.0)
    px.add_(ux, alpha=taut).div_(norm)
    py.add_(uy, alpha=taut).div_(norm)
    return delta.square().sum(dim=(1, 2, 3))


def _iterate(
    u: Tensor, px: Tensor, py: Tensor, lin: _Linearised, params: TVL1Params, eps_sum: float
) -> None:
    """Outer x inner iterations of one warp, in place, each pair stopping on its own.

    Pairs still iterating are gathered into a compact batch; a pair leaves it once its summed
    squared update is <= ``eps_sum`` (after that iteration's dual update, as OpenCV).
    """
    active = torch.arange(u.shape[0], device=u.device)
    for _ in range(params.outer_iterations):
        if active.numel() == 0:
            return
        su, spx, spy, slin = u[active], px[active], py[active], lin.take(active)
        if params.median_filtering > 1:
            su = median_filter(su, params.median_filtering)
        for _ in range(params.inner_iterations):
            error = _primal_dual_step(su, spx, spy, slin, params)
            going = error > eps_sum  # (n_active,)
            if bool(going.all()):
                continue
            u[active], px[active], py[active] = su, spx, spy
            active, su, spx, spy = active[going], su[going], spx[going], spy[going]
            slin = slin.take(going)
            if active.numel() == 0:
                return
        u[active], px[active], py[active] = su, spx, spy


def _solve_level(i0: Tensor, i1: Tensor, u: Tensor, params: TVL1Params) -> Tensor:
    """Refine ``u`` on one pyramid level: i0, i1 (N, 1, H, W), u (N, 2, H, W) -> (N, 2, H, W)."""
    n, _, h, w = i0.shape
    eps_sum = params.epsilon**2 * h * w  # OpenCV compares the *summed* squared update
    base = _pixel_grid(n, h, w, i0.device)
    i1x, i1y = centred_gradient(i1)
    stack = torch.cat((i1, i1x, i1y), dim=1)  # (N, 3, H, W): warped together
    u = u.clone()
    px = torch.zeros_like(u)  # dual variables: x / y component of p for flow x and flow y
    py = torch.zeros_like(u)
    for _ in range(params.warps):
        warped = warp_bicubic(stack, u, base)
        i1w, grad_i = warped[:, :1], warped[:, 1:]  # (N, 1, H, W), (N, 2, H, W)
        grad_sq = (grad_i * grad_i).sum(dim=1, keepdim=True)
        rho_c = i1w - (grad_i * u).sum(dim=1, keepdim=True) - i0
        inv_grad = torch.where(grad_sq > _FLT_EPS, 1.0 / grad_sq.clamp_min(_FLT_EPS), 0.0)
        _iterate(u, px, py, _Linearised(grad_i.contiguous(), rho_c, inv_grad), params, eps_sum)
    return u


@torch.no_grad()
def tvl1_flow(i0: Tensor, i1: Tensor, params: TVL1Params | None = None) -> Tensor:
    """TV-L1 flow from ``i0`` to ``i1`` for a batch of grey-level pairs.

    i0, i1: (N, H, W) grey levels in 0..255 (uint8 or float; same device).
    Returns (N, 2, H, W) float32 flow (x, y) in pixels: ``i0[y, x] ~ i1[y + v, x + u]``.
    """
    params = params or TVL1Params()
    if i0.shape != i1.shape or i0.dim() != 3:
        raise ValueError(f"tvl1_flow needs two (N, H, W) batches, got {i0.shape} and {i1.shape}")
    if min(i0.shape[1:]) < 3:
        raise ValueError(f"tvl1_flow needs frames of at least 3x3 pixels, got {i0.shape[1:]}")
    x0 = i0.float().unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    x1 = i1.float().unsqueeze(1)
    sizes = pyramid_sizes(x0.shape[2], x0.shape[3], params)
    levels = [(x0, x1)]
    s = params.scale_step
    for size in sizes[1:]:
        p0, p1 = levels[-1]
        levels.append((resize_linear(p0, size, (s, s)), resize_linear(p1, size, (s, s))))
    h, w = sizes[-1]
    u = torch.zeros(x0.shape[0], 2, h, w, device=x0.device)
    for level in range(len(sizes) - 1, -1, -1):
        u = _solve_level(*levels[level], u, params)
        if level == 0:
            break
        fh, fw = sizes[level - 1]
        ratio = (fh / u.shape[2], fw / u.shape[3])  # OpenCV resizes to a given size here
        u = resize_linear(u, (fh, fw), ratio) / s
    return u


def tvl1_torch(device: str = "cpu", **params: Any) -> FlowFn:
    """``FlowFn`` running ``tvl1_flow`` on ``device`` (all pairs of a call in one batch);
    ``params`` override ``TVL1Params`` fields."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested for tvl1-torch but CUDA is not available")
    tv_params = TVL1Params(**params)

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if prev.shape != nxt.shape or prev.ndim != 3 or prev.dtype != np.uint8:
            raise ValueError(
                f"flow needs two (N, H, W) uint8 batches, got {prev.dtype} {prev.shape} "
                f"and {nxt.dtype} {nxt.shape}"
            )
        i0 = torch.from_numpy(np.ascontiguousarray(prev)).to(dev)
        i1 = torch.from_numpy(np.ascontiguousarray(nxt)).to(dev)
        out = tvl1_flow(i0, i1, tv_params)  # (N, 2, H, W)
        return out.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # -> (N, H, W, 2)

    return flow
