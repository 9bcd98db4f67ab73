"""Video-level features from a frozen backbone: multi-clip averaging and a disk cache.

Protocol (CSTP appendix, "Video Retrieval Settings", following Xu et al. 2019 / Luo et al.
2020): K clips uniformly spaced in time (the ``"multi_clip"`` recipe; K = 10 in the paper)
each go through the backbone, each clip feature is L2-normalised, the K features are
average-pooled into one video-level vector, which is L2-normalised again so that a dot
product is the cosine similarity. ``clip_norm=False`` skips the per-clip normalisation (plain
average, then normalise).

Features are cached on disk under a file name made of the checkpoint's fingerprint (sha256 of
its bytes, or ``random-<seed>`` for an untrained model) and a hash of every data / evaluation
setting, so retrieval, the linear probe and the kNN classifier all reuse one extraction.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.bars import ProgressBar
from vidssl.models.backbones.base import pooled_features

# batch keys that are never label sets
NON_LABEL_KEYS: frozenset[str] = frozenset(
    {"clips", "video", "views", "pretext", "index", "item", "skipped"}
)

FEATURES_FORMAT = "vidssl.features/1"
# largest per-dimension std over videos (of L2-normalised rows) below which every video has
# the same feature: a collapsed network, whose frozen metrics all sit exactly at chance
CONSTANT_FEATURES_STD = 1e-4


def features_are_constant(feats: Tensor) -> bool:
    """feats: (N, D) L2-normalised video features -> True when they are (numerically) one
    vector for every video (N >= 2): the largest std over the N rows, of any dimension, is
    below :data:`CONSTANT_FEATURES_STD`."""
    if feats.ndim != 2 or feats.shape[0] < 2:
        return False
    return bool(feats.float().std(dim=0).max() < CONSTANT_FEATURES_STD)  # (N, D) -> (D,)


class Features(NamedTuple):
    """Video-level features of one split.

    feats: (N, D) float32, L2-normalised rows.
    labels: label set name -> (N,) int64; always contains ``"label"`` when the loader gave it,
        plus every extra label set of the data (e.g. ``"appearance"``).
    indices: (N,) int64, dataset index of each row.
    """

    feats: Tensor
    labels: dict[str, Tensor]
    indices: Tensor


def _label_keys(batch: Mapping[str, Any], batch_size: int) -> list[str]:
    """Keys of ``batch`` holding one integer label per sample (``"label"`` + extra label sets)."""
    keys = []
    for key, value in batch.items():
        if key in NON_LABEL_KEYS or not isinstance(value, Tensor):
            continue
        if value.ndim == 1 and value.shape[0] == batch_size and not value.is_floating_point():
            keys.append(key)
    return keys


def _clips_of(batch: Mapping[str, Any]) -> Tensor:
    """The batch's clips as ``(B, K, C, T, H, W)``; a single-clip batch gets K = 1."""
    if "clips" in batch:
        clips = batch["clips"]
        if clips.ndim != 6:
            raise ValueError(f'batch["clips"] must be (B, K, C, T, H, W), got {tuple(clips.shape)}')
        return clips
    if "video" in batch:
        video = batch["video"]
        if video.ndim != 5:
            raise ValueError(f'batch["video"] must be (B, C, T, H, W), got {tuple(video.shape)}')
        return video.unsqueeze(1)  # (B, C, T, H, W) -> (B, 1, C, T, H, W)
    raise KeyError(
        f'batch has neither "clips" nor "video" (keys: {sorted(batch)}); '
        'use the "multi_clip" recipe for feature extraction'
    )


def pool_clip_features(clip_feats: Tensor, clip_norm: bool = True) -> Tensor:
    """Average K clip features into one L2-normalised video feature.

    clip_feats: (B, K, D) -> (B, D) float32.
    """
    clip_feats = clip_feats.float()
    if clip_norm:
        clip_feats = F.normalize(clip_feats, dim=-1)
    return F.normalize(clip_feats.mean(dim=1), dim=-1)


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    device: torch.device | str = "cpu",
    amp: bool = False,
    *,
    clip_norm: bool = True,
    label_keys: Sequence[str] | None = None,
    desc: str = "features",
    progress: bool = True,
) -> Features:
    """Run a frozen backbone over a loader of multi-clip batches.

    Each batch: ``"clips"`` (B, K, C, T, H, W) (or ``"video"`` (B, C, T, H, W), K = 1),
    ``"index"`` (B,), ``"label"`` (B,) and extra label sets (B,). The K clips go through
    the backbone (``pooled_features``: ``forward_head(forward_features(x), pre_logits=True)``)
    as one (B*K, C, T, H, W) batch, are averaged and
    L2-normalised (see :func:`pool_clip_features`).

    ``amp`` runs the backbone under bf16 autocast; features are returned in float32.
    ``label_keys`` defaults to every 1-D integer tensor of the batch except ``"index"`` and
    ``"skipped"``. To extract a shard, give a loader over a ``Subset`` built from
    :func:`shard_range` and join the parts with :func:`merge_features`.
    """
    device = torch.device(device)
    was_training = backbone.training
    backbone.eval()
    feats: list[Tensor] = []
    indices: list[Tensor] = []
    labels: dict[str, list[Tensor]] = {}
    num_videos = len(loader.dataset) if hasattr(loader, "dataset") else None  # type: ignore[arg-type]
    bar: ProgressBar | None = None  # made at the first batch, when K (clips per video) is known
    try:
        for batch in loader:
            clips = _clips_of(batch)
            b, k = clips.shape[:2]
            if bar is None:
                total = num_videos * k if num_videos is not None else None
                bar = ProgressBar(
                    total=total, desc=desc, unit="clip", disable=not progress, dynamic_ncols=True
                )
            x = clips.reshape(b * k, *clips.shape[2:])  # (B, K, C, T, H, W) -> (B*K, C, T, H, W)
            x = x.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                z = pooled_features(backbone, x)  # (B*K, D)
            z = z.float().reshape(b, k, -1)  # (B*K, D) -> (B, K, D)
            feats.append(pool_clip_features(z, clip_norm=clip_norm).cpu())
            if "index" in batch:
                indices.append(torch.as_tensor(batch["index"]).long().cpu())
            else:  # no index key: rows are numbered in loader order
                offset = sum(len(i) for i in indices)
                indices.append(torch.arange(offset, offset + b))
            keys = label_keys if label_keys is not None else _label_keys(batch, b)
            for key in keys:
                if key not in batch:
                    raise KeyError(
                        f"label set {key!r} missing from the batch (keys: {sorted(batch)})"
                    )
                labels.setdefault(key, []).append(torch.as_tensor(batch[key]).long().cpu())
            bar.update(b * k)  # the bar shows clips/s and the time left
    finally:
        if bar is not None:
            bar.close()
        backbone.train(was_training)
    if not feats:
        raise ValueError(f"{desc}: the loader yielded no batches (empty dataset?)")
    return Features(
        feats=torch.cat(feats),
        labels={key: torch.cat(parts) for key, parts in labels.items()},
        indices=torch.cat(indices),
    )


def shard_range(num_items: int, shard: int, num_shards: int) -> range:
    """Contiguous slice ``shard`` of ``num_shards`` over ``num_items`` (``--shard K/N``).

    Shard sizes differ by at most one; shards are disjoint and cover every item.
    """
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"--shard must be K/N with 0 <= K < N, got {shard}/{num_shards}")
    start = num_items * shard // num_shards
    stop = num_items * (shard + 1) // num_shards
    return range(start, stop)


def merge_features(parts: Sequence[Features]) -> Features:
    """Join shards into one :class:`Features`, rows sorted by dataset index."""
    if not parts:
        raise ValueError("merge_features: no shards given")
    keys = set(parts[0].labels)
    for part in parts[1:]:
        if set(part.labels) != keys:
            raise ValueError(
                f"shards disagree on label sets: {sorted(keys)} vs {sorted(part.labels)}"
            )
    indices = torch.cat([p.indices for p in parts])
    order = torch.argsort(indices, stable=True)
    if len(torch.unique(indices)) != len(indices):
        raise ValueError("shards overlap: some dataset index appears twice")
    return Features(
        feats=torch.cat([p.feats for p in parts])[order],
        labels={k: torch.cat([p.labels[k] for p in parts])[order] for k in sorted(keys)},
        indices=indices[order],
    )


# ---------------------------------------------------------------------------- disk cache


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_fingerprint(checkpoint: str | Path | None, seed: int = 0) -> str:
    """What identifies the weights: ``sha256:<16 hex>`` of the checkpoint file, or
    ``random-<seed>`` for a randomly initialised backbone (``checkpoint=None``)."""
    if checkpoint is None:
        return f"random-{seed}"
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return f"sha256-{file_sha256(path)[:16]}"


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Short stable hash of a JSON-able settings dict (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_features(cache_dir: str | Path, key_parts: Mapping[str, Any]) -> Path:
    """Path of the cache file for one extraction.

    ``key_parts`` must contain ``"checkpoint"`` (from :func:`checkpoint_fingerprint`) and
    everything else that changes the features: dataset / split, backbone name and width,
    number of clips, crops, frames, resolution, ``clip_norm``, ... The file name is
    ``feats-<checkpoint>-<settings hash>.pt``: a different checkpoint or any different
    setting gives a different file; the same ones give the same file, whatever the dict order.
    """
    if "checkpoint" not in key_parts:
        raise KeyError(
            'cached_features: key_parts needs a "checkpoint" entry (checkpoint_fingerprint)'
        )
    checkpoint = str(key_parts["checkpoint"])
    settings = {k: v for k, v in key_parts.items() if k != "checkpoint"}
    return Path(cache_dir) / f"feats-{checkpoint}-{settings_hash(settings)}.pt"


def save_features(
    path: str | Path, features: Features, class_names: Mapping[str, Sequence[str]] | None = None
) -> Path:
    """Write features as plain tensors (atomic: temp file then rename).

    ``class_names`` (label set -> names) is stored alongside for plots.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FEATURES_FORMAT,
        "feats": features.feats.float().contiguous(),
        "labels": {k: v.long().contiguous() for k, v in features.labels.items()},
        "indices": features.indices.long().contiguous(),
        "class_names": {k: [str(n) for n in v] for k, v in (class_names or {}).items()},
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_features_file(path: str | Path) -> tuple[Features, dict[str, list[str]]]:
    """Read a file written by :func:`save_features`: ``(features, class_names)``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # re-raised with the file name
        raise ValueError(f"cannot read features file {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FEATURES_FORMAT:
        raise ValueError(f"{path} is not a vidssl features file (format {FEATURES_FORMAT!r})")
    features = Features(payload["feats"], dict(payload["labels"]), payload["indices"])
    return features, {k: list(v) for k, v in payload.get("class_names", {}).items()}


def load_features(path: str | Path) -> Features:
    """Read the :class:`Features` of a file written by :func:`save_features`."""
    return load_features_file(path)[0]


def load_or_extract(path: str | Path, extract: Callable[[], Features]) -> Features:
    """Return the cached features at ``path``, or call ``extract()`` and cache its result."""
    path = Path(path)
    if path.is_file():
        return load_features(path)
    features = extract()
    save_features(path, features)
    return features
