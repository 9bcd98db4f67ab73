"""Report figures: training curves, retrieval grid, embedding map, Grad-CAM overlay.

Every plotting function takes arrays and returns a ``matplotlib.figure.Figure`` drawn on the
Agg canvas (no pyplot, no GUI backend, safe in worker threads); :func:`save_figure` writes it
as PNG. Reading run files and choosing what to plot is the report's job
(:mod:`vidssl.app.report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure

DPI = 110
HIT_COLOR = "#1a9641"  # green
MISS_COLOR = "#d7191c"  # red
QUERY_COLOR = "#404040"

# metrics.jsonl key -> axis label of its panel
CURVE_LABELS: dict[str, str] = {
    "loss": "training loss",
    "lr": "learning rate",
    "clips_per_s": "throughput (clips/s)",
}
# keys drawn without smoothing (schedules, not noisy measurements)
UNSMOOTHED: frozenset[str] = frozenset({"lr"})

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def new_figure(width: float, height: float, dpi: int = DPI) -> Figure:
    """A Figure attached to an Agg canvas (size in inches)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi, facecolor="white")
    return path


# ---------------------------------------------------------------------- training curves


def smooth_ema(values: ArrayLike, weight: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing slider); NaNs skipped.

    values (N,) -> (N,); ``weight`` in [0, 1), 0 = no smoothing.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    v = _np(values).astype(np.float64)
    out = np.full_like(v, np.nan)
    acc, norm = 0.0, 0.0
    for i, x in enumerate(v):
        if np.isfinite(x):
            acc = weight * acc + (1 - weight) * x
            norm = weight * norm + (1 - weight)
        if norm > 0:
            out[i] = acc / norm
    return out


def plot_training_curves(
    steps: ArrayLike,
    series: Mapping[str, ArrayLike],
    smoothing: float = 0.6,
    epochs: ArrayLike | None = None,
    title: str = "Training curves",
) -> Figure:
    """One panel per series (e.g. loss, lr, clips/s) against the optimiser step.

    steps (N,); series: name -> (N,) with NaN where a step did not log that value; epochs (N,)
    optional, drawn as faint lines at epoch starts (when there are at most 30 epochs). Noisy
    series are drawn raw (faint) and smoothed (:func:`smooth_ema`); names in ``UNSMOOTHED``
    (the lr schedule) are drawn as they are.
    """
    if not series:
        raise ValueError("plot_training_curves: no series to plot")
    x = _np(steps).astype(np.float64)
    names = list(series)
    fig = new_figure(6.5, 2.2 * len(names) + 0.6)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    starts: np.ndarray = np.array([])
    if epochs is not None:
        ep = _np(epochs)
        change = np.flatnonzero(np.diff(ep) != 0) + 1
        if len(change) <= 30:
            starts = x[change]
    for ax, name in zip(axes, names):
        y = _np(series[name]).astype(np.float64)
        if y.shape != x.shape:
            raise ValueError(f"series {name!r} has {y.shape[0]} values for {x.shape[0]} steps")
        ok = np.isfinite(y)
        label = CURVE_LABELS.get(name, name)
        for s in starts:
            ax.axvline(s, color="0.85", lw=0.8, zorder=0)
        if name in UNSMOOTHED or smoothing == 0:
            ax.plot(x[ok], y[ok], color="C0", lw=1.5, label=label)
        else:
            ax.plot(x[ok], y[ok], color="C0", lw=0.8, alpha=0.3, label="raw")
            ax.plot(
                x[ok],
                smooth_ema(y, smoothing)[ok],
                color="C0",
                lw=1.8,
                label=f"smoothed (EMA {smoothing:g})",
            )
            ax.legend(loc="best", fontsize=8, frameon=False)
        if name == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("optimiser step" + (" (grey lines: epoch starts)" if len(starts) else ""))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- frames


def frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread uniformly over ``num_frames`` (centres of equal bins)."""
    count = min(count, num_frames)
    return [int((i + 0.5) * num_frames / count) for i in range(count)]


def clip_to_frames(
    clip: torch.Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    count: int | None = 4,
) -> np.ndarray:
    """A model-input clip back to displayable frames.

    clip: (C, T, H, W) float, normalised as ``(x - mean) / std`` with x in [0, 1] -> uint8
    (S, H, W, 3) at ``count`` uniformly spaced frames (all frames when None). Without
    mean/std the clip is min-max scaled. One-channel clips are repeated to RGB.
    """
    if clip.ndim != 4:
        raise ValueError(f"clip must be (C, T, H, W), got {tuple(clip.shape)}")
    x = clip.detach().float().cpu()
    if mean is not None and std is not None:
        m = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1, 1)
        x = x * s + m  # undo (x - mean) / std
    else:
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
    if count is not None:
        x = x[:, frame_indices(x.shape[1], count)]
    if x.shape[0] == 1:
        x = x.expand(3, *x.shape[1:])
    frames = x.permute(1, 2, 3, 0)  # (C, S, H, W) -> (S, H, W, C)
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def frame_strip(frames: ArrayLike, gap: int = 2) -> np.ndarray:
    """frames (S, H, W, 3) uint8 -> (H, S*W + (S-1)*gap, 3), side by side on white."""
    f = _np(frames)
    s, h, w, c = f.shape
    strip = np.full((h, s * w + (s - 1) * gap, c), 255, dtype=np.uint8)
    for i in range(s):
        strip[:, i * (w + gap) : i * (w + gap) + w] = f[i]
    return strip


def _frame_axes(ax: object, color: str | None = None, width: float = 4.0) -> None:
    """No ticks; a coloured border (the spines) when ``color`` is given."""
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]
    for spine in ax.spines.values():  # type: ignore[attr-defined]
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(width)


def _name(class_names: Sequence[str], label: int) -> str:
    return class_names[label] if 0 <= label < len(class_names) else f"class {label}"


# ---------------------------------------------------------------------- retrieval grid


def plot_retrieval_grid(
    query_frames: ArrayLike,
    neighbour_frames: ArrayLike,
    query_labels: ArrayLike,
    neighbour_labels: ArrayLike,
    class_names: Sequence[str],
    sims: ArrayLike | None = None,
    title: str = "Nearest-neighbour retrieval",
) -> Figure:
    """Rows = query clips; each row shows the query's frame strip, then its k neighbours'.

    query_frames (Q, S, H, W, 3) uint8; neighbour_frames (Q, k, S, H, W, 3) uint8;
    query_labels (Q,); neighbour_labels (Q, k); sims (Q, k) cosine similarities (optional).
    A neighbour of the query's class (a hit) gets a green border and "hit", else red "miss".
    """
    qf, nf = _np(query_frames), _np(neighbour_frames)
    ql, nl = _np(query_labels).astype(int), _np(neighbour_labels).astype(int)
    q, k = nl.shape
    if qf.shape[0] != q or nf.shape[:2] != (q, k):
        raise ValueError(
            f"retrieval grid: query_frames {qf.shape}, neighbour_frames {nf.shape} and "
            f"neighbour_labels {nl.shape} disagree"
        )
    s, h, w = qf.shape[1:4]
    aspect = (s * w) / h
    cell_w = min(3.6, max(1.6, 0.9 * aspect))
    cell_h = cell_w / aspect + 0.45
    fig = new_figure(cell_w * (k + 1) + 0.3, cell_h * q + 0.9)
    axes = fig.subplots(q, k + 1, squeeze=False)
    for i in range(q):
        ax = axes[i, 0]
        ax.imshow(frame_strip(qf[i]))
        _frame_axes(ax, QUERY_COLOR, 2.0)
        ax.set_title(f"query: {_name(class_names, ql[i])}", fontsize=9, fontweight="bold")
        for j in range(k):
            hit = nl[i, j] == ql[i]
            color = HIT_COLOR if hit else MISS_COLOR
            ax = axes[i, j + 1]
            ax.imshow(frame_strip(nf[i, j]))
            _frame_axes(ax, color)
            sim = "" if sims is None else f" (sim {float(_np(sims)[i, j]):.3f})"
            ax.set_title(
                f"#{j + 1} {'hit' if hit else 'miss'}: {_name(class_names, nl[i, j])}{sim}",
                fontsize=9,
                color=color,
            )
    fig.suptitle(
        f"{title}\ntest queries (left, {s} frames each) and their top-{k} training-set "
        "neighbours; green = same class, red = other class",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- embedding map


def _class_colors(num_classes: int) -> list[tuple[float, ...]]:
    cmap: Colormap
    if num_classes <= 10:
        cmap = colormaps["tab10"]
        return [cmap(i) for i in range(num_classes)]
    if num_classes <= 20:
        cmap = colormaps["tab20"]
        return [cmap(i) for i in range(num_classes)]
    cmap = colormaps["turbo"]
    return [cmap(i / (num_classes - 1)) for i in range(num_classes)]


def pca_2d(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Project onto the first two principal components: (N, D) -> ((N, 2), explained (2,)).

    ``explained`` holds the fraction of the total variance along each axis. Component signs
    are fixed (largest-magnitude loading positive) so the map does not flip between runs.
    """
    x = _np(feats).astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]  # (2, D)
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    coords = x @ comps.T  # (N, D) @ (D, 2) -> (N, 2)
    total = float((sv**2).sum()) or 1.0
    explained = (sv[:2] ** 2) / total
    if coords.shape[1] < 2:  # one-dimensional features: pad the second axis
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained


def tsne_2d(feats: ArrayLike, seed: int = 0) -> np.ndarray:
    """t-SNE with scikit-learn (only when it is installed): (N, D) -> (N, 2)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as exc:
        raise ImportError("embedding method 'tsne' needs scikit-learn; use method='pca'") from exc
    x = _np(feats).astype(np.float32)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def _has_sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def plot_embedding(
    feats: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    method: str = "pca",
    title: str = "Embedding map",
    seed: int = 0,
) -> Figure:
    """2-D map of video features coloured by class, with a legend.

    feats (N, D), labels (N,). ``method``: "pca" (numpy, default), "tsne" (needs
    scikit-learn) or "auto" (t-SNE when scikit-learn is importable, else PCA).
    """
    if method not in ("pca", "tsne", "auto"):
        raise ValueError(f"embedding method must be 'pca', 'tsne' or 'auto', got {method!r}")
    use_tsne = method == "tsne" or (method == "auto" and _has_sklearn())
    y = _np(labels).astype(int)
    if use_tsne:
        coords = tsne_2d(feats, seed)
        xlabel, ylabel, how = "t-SNE 1", "t-SNE 2", "t-SNE"
    else:
        coords, explained = pca_2d(feats)
        xlabel = f"PC 1 ({100 * explained[0]:.0f}% of variance)"
        ylabel = f"PC 2 ({100 * explained[1]:.0f}% of variance)"
        how = "PCA"
    present = sorted(set(y.tolist()))
    num = max(len(class_names), max(present) + 1)
    colors = _class_colors(num)
    marker = float(np.clip(3000 / max(len(y), 1), 6, 40))  # fewer points, bigger dots
    legend_cols = 1 if len(present) <= 12 else 2 if len(present) <= 30 else 3
    fig = new_figure(6.0 + 1.6 * legend_cols, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for c in present:
        m = y == c
        ax.scatter(
            coords[m, 0],
            coords[m, 1],
            s=marker,
            color=colors[c],
            alpha=0.85,
            edgecolors="none",
            label=f"{_name(class_names, c)} ({int(m.sum())})",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{how} of {len(y)} video features, colour = class")
    ax.grid(True, alpha=0.25)
    ax.legend(
        title="class (count)",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        ncol=legend_cols,
        frameon=False,
        markerscale=1.3,
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- Grad-CAM overlay


def plot_cam_overlay(
    frames: ArrayLike,
    cams: ArrayLike,
    titles: Sequence[str] | None = None,
    frame_ids: Sequence[int] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str = "Grad-CAM",
) -> Figure:
    """For each clip: its frames (upper row) and the Grad-CAM heatmap over them (lower row).

    frames (N, S, H, W, 3) uint8 (or one clip (S, H, W, 3)); cams (N, S, H, W) in [0, 1];
    frame_ids: the S frame numbers within the clip, written above the first clip's frames.
    """
    f, c = _np(frames), _np(cams).astype(np.float64)
    if f.ndim == 4:
        f, c = f[None], c[None]
    if f.shape[:4] != c.shape:
        raise ValueError(
            f"frames {f.shape} and cams {c.shape} disagree (need (N, S, H, W, 3) / (N, S, H, W))"
        )
    n, s, h, w = c.shape
    titles = list(titles) if titles is not None else [f"clip {i + 1}" for i in range(n)]
    cell = min(1.8, max(1.1, 7.5 / s))
    fig = new_figure(cell * s * w / h + 1.3, n * (2 * cell + 0.3) + 0.6)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(2 * n, s, squeeze=False)
    colormap = colormaps[cmap]
    for i in range(n):
        top, bottom = axes[2 * i], axes[2 * i + 1]
        for j in range(s):
            top[j].imshow(f[i, j])
            bottom[j].imshow(f[i, j])
            bottom[j].imshow(c[i, j], cmap=colormap, alpha=alpha, vmin=0.0, vmax=1.0)
            _frame_axes(top[j])
            _frame_axes(bottom[j])
        top[0].set_ylabel("frames", fontsize=8)
        bottom[0].set_ylabel("Grad-CAM", fontsize=8)
        top[0].set_title(titles[i], fontsize=9, loc="left", fontweight="bold")
    if frame_ids is not None:
        for j, fid in enumerate(frame_ids):
            axes[0, j].set_xlabel(f"frame {fid}", fontsize=7)
            axes[0, j].xaxis.set_label_position("top")
    fig.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormap),
        ax=axes.ravel().tolist(),
        shrink=0.8,
        label="relevance (1 = clip maximum)",
    )
    fig.suptitle(title, fontsize=11)
    return fig
