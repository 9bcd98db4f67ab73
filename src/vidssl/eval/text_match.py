"""Text matching of a language-video method (X-CLIP style): ``closed-set`` and ``zeroshot``.

Every test video is encoded with K = ``num_clips`` x ``num_crops`` views (4 x 3 = 12 in X-CLIP
Sec. 4.2) and scored by the cosine between its unit video embedding and the unit class text
embeddings (``method.zero_shot_logits``; the auxiliary head is not used at inference). A
video's prediction is the mean over its K views of the softmax of the scaled cosines.

- ``closed-set``: every test video against all classes' texts; top-1 / top-5.
- ``zeroshot``: only videos of the classes held out from training, scored against only the
  held-out classes' texts. Top-k is clamped to the number of held-out classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from typing import Protocol as TypingProtocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vidssl.bars import ProgressBar
from vidssl.config import ConfigError
from vidssl.data.datasets import VideoDataset
from vidssl.eval.linear import topk_accuracy
from vidssl.eval.protocol_base import Outcome, Protocol


@dataclass
class TextSettings:
    """Settings of the ``closed-set`` / ``zeroshot`` protocols."""

    num_clips: int = 4  # clips uniformly spaced in time per video (4 in Sec. 4.2)
    num_crops: int = 3  # 1 = centre crop, 3 = three crops along the long side (Sec. 4.2)
    clip_len: int = 0  # frames per clip; 0 = the checkpoint's data.clip_len
    stride: float = 0.0  # source frames per clip frame; 0 = the checkpoint's data.stride
    size: int = 0  # crop side in pixels; 0 = the checkpoint's data.size
    subset: str = "test"  # subset of the dataset that is evaluated
    batch_size: int = 8  # videos per forward
    workers: int = 0  # DataLoader worker processes
    ks: tuple[int, ...] = (1, 5)  # top-k accuracies reported
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True  # tqdm progress bar


class TextJob(TypingProtocol):
    """What a text protocol asks of the caller."""

    method: nn.Module  # a trained language-video method (``zero_shot_logits``), eval mode
    held_out: list[int]  # class labels held out from its training
    source: str  # the checkpoint, for messages
    device: torch.device

    def loader(self, classes: list[int]) -> DataLoader:
        """The evaluated videos of ``classes``, K views each (``"clips"``, ``"label"``)."""
        ...


@dataclass
class VideoTextJob:
    """A :class:`TextJob` over a built dataset (its items filtered to the scored classes)."""

    method: torch.nn.Module
    held_out: list[int]
    source: str
    device: torch.device
    data: VideoDataset
    settings: TextSettings

    def loader(self, classes: list[int]) -> DataLoader:
        keep = set(classes)  # only the scored classes' videos are decoded
        self.data.index.items = [it for it in self.data.index.items if it.label in keep]
        if not self.data.index.items:
            subset = self.settings.subset
            raise ValueError(f"{self.source}: no {subset!r} videos of classes {classes}")
        s = self.settings
        return DataLoader(self.data, batch_size=s.batch_size, shuffle=False, num_workers=s.workers)


@torch.no_grad()
def view_probabilities(
    method: nn.Module, loader: DataLoader, device: torch.device, progress: bool = True
) -> tuple[Tensor, Tensor]:
    """Per-video class probabilities averaged over views, and labels: (N, K), (N,).

    Each batch's ``"clips"`` (B, V, C, T, H, W) is scored view by view with
    ``zero_shot_logits`` (B*V, K); softmax, then the mean over the V views.
    """
    probs, labels = [], []
    for batch in ProgressBar(loader, desc="text matching", unit="batch", disable=not progress):
        clips = batch["clips"].to(device)
        b, v = clips.shape[:2]
        logits = method.zero_shot_logits(clips.flatten(0, 1))  # (B, V, ...) -> (B*V, K)
        probs.append(logits.softmax(-1).view(b, v, -1).mean(1).cpu())  # (B*V, K) -> (B, K)
        labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def text_match_metrics(
    probs: Tensor, labels: Tensor, classes: list[int], ks: tuple[int, ...]
) -> dict[str, float]:
    """Top-k over the class columns ``classes`` only, for the videos of those classes.

    probs: (N, K) over all classes; labels: (N,). Rows whose label is not in ``classes`` are
    dropped; the remaining labels are re-indexed to positions in ``classes``.
    """
    cols = torch.tensor(classes, dtype=torch.long)
    remap = torch.full((probs.shape[1],), -1, dtype=torch.long)
    remap[cols] = torch.arange(len(classes))
    target = remap[labels]  # (N,) position in `classes`, -1 outside
    keep = target >= 0
    if not keep.any():
        raise ValueError(f"no evaluated video belongs to the classes {classes}")
    acc = topk_accuracy(probs[keep][:, cols], target[keep], ks)
    return {f"top{k}": v for k, v in acc.items()}


class ClosedSet(Protocol):
    """Every test video against all classes' texts."""

    name = "closed-set"
    title = "closed-set"  # the report shows text protocols by name
    prefix = "closed-set "
    needs = "text"
    settings = TextSettings
    in_all = False

    def classes(self, job: TextJob) -> list[int]:
        """The class labels scored against (their videos are the ones evaluated)."""
        return list(range(job.method.class_tokens.shape[0]))

    def run(self, job: TextJob, settings: Any) -> list[Outcome]:  # type: ignore[override]
        classes = self.classes(job)
        probs, labels = view_probabilities(
            job.method, job.loader(classes), job.device, settings.progress
        )
        metrics = text_match_metrics(probs, labels, classes, settings.ks)
        return [Outcome("label", metrics, {"num_videos": int(labels.numel()), "scored": classes})]


class ZeroShot(ClosedSet):
    """Only the held-out classes' videos, against only the held-out classes' texts."""

    name = "zeroshot"
    title = "zeroshot"
    prefix = "zero-shot "

    def classes(self, job: TextJob) -> list[int]:
        if not job.held_out:
            raise ConfigError(
                "--checkpoint",
                f"{job.source} was trained without held-out classes; set method.held_out_classes "
                "or method.held_out_fraction when pre-training for the zeroshot protocol",
            )
        return list(job.held_out)
