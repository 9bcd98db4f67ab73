"""Video-level embeddings of any list of videos, through the evaluation data path.

The clips are built exactly as for ``vidssl eval``: the same ``multi_clip`` (or two-stream)
recipe from :func:`eval_recipe` (asked for the backbone's ``modalities``), the same ``VideoDataset`` opening, and
:func:`vidssl.eval.features.extract_features` (K clips per video, each L2-normalised,
averaged, normalised again). What is added for collections of the user's own footage:

- an unreadable file does not stop the run and is not replaced by another video (as in
  training): :class:`EmbedDataset` returns an error record for it;
- every video's record notes what was read: frames, fps, the displayed frame size (after
  rotation metadata) and the number of clips averaged;
- :func:`iter_embedding_chunks` yields the embeddings in chunks of videos, so that a caller
  can store them as they come (``vidssl embed`` resumes from them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vidssl.data.datasets import VideoDataset
from vidssl.data.layouts import DatasetIndex, VideoItem
from vidssl.data.recipes import RECIPES, ClipRecipe
from vidssl.eval.features import Features, extract_features
from vidssl.models.two_stream import stream_of


def eval_recipe(
    modalities: Sequence[str],
    clip: Mapping[str, Any],
    num_clips: int,
    num_crops: int = 1,
    *,
    input_args: Mapping[str, Any] | None = None,
    root: str | None = None,
) -> ClipRecipe:
    """The deterministic multi-clip recipe of evaluation for a backbone consuming
    ``modalities`` (its ``modalities`` attribute).

    clip: ``clip_len`` / ``stride`` / ``size`` (:meth:`Weights.clip_settings`). Flow inputs
    take ``input_args`` (:meth:`Weights.input_args`: the flow settings the checkpoint was
    trained with, and ``flow_root`` when stored flow mirroring ``root`` is read; without it
    flow is computed on the fly).
    """
    views = {"num_clips": num_clips, "num_crops": num_crops}
    shared = {"clip_len": clip["clip_len"], "stride": clip["stride"], "size": clip["size"]}
    stream = stream_of(tuple(modalities))
    if stream == "rgb":
        return RECIPES["multi_clip"](**shared, train=False, **views)
    args = dict(input_args or {})
    if args.get("flow_root"):
        args["rgb_root"] = root
    return RECIPES["two_stream_multi_clip"](**shared, train=False, stream=stream, **views, **args)


class _Observed:
    """A ``VideoSource`` proxy that remembers the size of the frames it delivered."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.frame_size: tuple[int, int] = (0, 0)  # (height, width) as delivered (upright)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        frames = self._source.get_frames(indices)  # (T, H, W, C)
        self.frame_size = (int(frames.shape[1]), int(frames.shape[2]))
        return frames

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


@dataclass(frozen=True)
class VideoRecord:
    """What was read from one video (``error`` is "" when it was embedded)."""

    index: int  # position in the dataset index
    path: str
    error: str  # cause when unreadable, else ""
    frames: int  # decodable frames (0 when unreadable)
    fps: float
    height: int  # displayed frame size, after rotation metadata
    width: int
    clips: int  # clip views averaged into the embedding (num_clips x num_crops)

    @property
    def duration(self) -> float:
        """Seconds (frames / fps); 0 when unknown."""
        return self.frames / self.fps if self.fps > 0 else 0.0


class EmbedDataset(VideoDataset):
    """``VideoDataset`` that reports an unreadable file instead of replacing it.

    Sample ``i``: ``{"clips": (K, C, T, H, W), "record": VideoRecord}``, or only ``"record"``
    (with its ``error``) when the file cannot be read.
    """

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.index.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i, 0])  # eval recipes ignore it
        try:
            source = _Observed(self._open(item.path))
            try:
                sample = self.recipe(source, rng)
            finally:
                source.close()
        except Exception as exc:  # any failure on one file is recorded, never fatal
            from vidssl.data.video import describe_exception

            cause = getattr(exc, "cause", None) or describe_exception(exc)
            return {"record": VideoRecord(i, item.path, cause, 0, 0.0, 0, 0, 0)}
        h, w = source.frame_size
        clips = sample["clips"]
        record = VideoRecord(
            i, item.path, "", source.num_frames, float(source.fps), h, w, len(clips)
        )
        return {"clips": clips, "record": record}


def collate_embed(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch of :class:`EmbedDataset` samples: ``"records"`` for all, ``"clips"``
    ``(B, K, C, T, H, W)`` and ``"index"`` ``(B,)`` for the readable ones only."""
    good = [s for s in samples if "clips" in s]
    batch: dict[str, Any] = {"records": [s["record"] for s in samples]}
    if good:
        batch["clips"] = torch.stack([s["clips"] for s in good])  # B x (K, ...) -> (B, K, ...)
        batch["index"] = torch.tensor([s["record"].index for s in good])
    return batch


def embed_loader(
    paths: Sequence[str | Path],
    recipe: ClipRecipe,
    *,
    batch_size: int = 8,
    workers: int = 0,
    opener: Callable[[str], Any] | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """Loader over ``paths`` in order (see :class:`EmbedDataset`, :func:`collate_embed`)."""
    index = DatasetIndex([VideoItem(str(p), -1) for p in paths], [])
    dataset = EmbedDataset(index, recipe, seed=0, opener=opener)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_embed,
        pin_memory=pin_memory,
    )


@dataclass
class EmbeddingChunk:
    """Consecutive videos of a run: their records, and the embeddings of the readable ones.

    feats: (M, D) float32 L2-normalised, row ``j`` for dataset index ``indices[j]``; M is the
    number of records without an error.
    """

    records: list[VideoRecord]
    feats: Tensor
    indices: Tensor


def iter_embedding_chunks(
    backbone: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    *,
    chunk_batches: int = 32,
    device: torch.device | str = "cpu",
    amp: bool = False,
    clip_norm: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[EmbeddingChunk]:
    """Embeddings of a :func:`embed_loader`'s videos, ``chunk_batches`` batches at a time.

    Readable videos go through :func:`extract_features`; ``on_batch(n)`` is called with the
    number of videos (readable or not) of each batch, e.g. to advance a progress bar.
    """
    pending: list[VideoRecord] = []

    def readable() -> Iterator[Mapping[str, Any]]:
        for batch in loader:
            pending.extend(batch["records"])
            if on_batch is not None:
                on_batch(len(batch["records"]))
            if "clips" in batch:
                yield {"clips": batch["clips"], "index": batch["index"]}

    batches = readable()
    empty = torch.zeros(0, dtype=torch.long)
    while True:
        first = next(batches, None)
        if first is None:
            break
        chunk = itertools.chain([first], itertools.islice(batches, chunk_batches - 1))
        feats: Features = extract_features(
            backbone, chunk, device, amp, clip_norm=clip_norm, label_keys=(), progress=False
        )
        records, pending[:] = list(pending), []
        yield EmbeddingChunk(records, feats.feats, feats.indices)
    if pending:  # unreadable videos after the last readable batch
        yield EmbeddingChunk(list(pending), torch.zeros(0, 0), empty)
