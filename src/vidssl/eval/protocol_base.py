"""What an evaluation protocol is: a small class with its settings, what it needs and ``run``.

A protocol (an entry of :data:`vidssl.eval.protocols.PROTOCOLS`) declares

- ``name`` (the command-line word), ``title`` (the report's table caption), ``prefix`` and
  ``columns`` (the bench table shows ``f"{prefix}{metric}"`` for each metric in ``columns``);
- ``needs``: ``"features"`` (frozen video-level features), ``"network"`` (the backbone, to
  train end to end) or ``"text"`` (a language-video method that matches class texts);
- ``settings``: its settings dataclass (a comment per field); the evaluation settings a user
  writes (:data:`vidssl.eval.protocols.EvalConfig`) are the union of these;
- ``run(job, settings) -> list[Outcome]``: one outcome (label set, metrics, details) per label
  set it scores.

The job (:class:`EvalJob`) is what the caller (``vidssl eval``, the bench, the demo) hands to
``run``: the seed, the label sets, cached frozen features and, for the protocols that need
them, the network and a trainer. It hides *where* features come from (a checkpoint, a random
init, later a backbone wrapper for two-stream checkpoints), so a protocol never sees streams
or data folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from typing import Protocol as TypingProtocol

from torch import nn
from torch.utils.data import DataLoader

from vidssl.eval.features import Features

Needs = Literal["features", "network", "text"]


@dataclass
class ClipSettings:
    """How test videos become clips and features (shared by every non-text protocol)."""

    # CSTP appendix, "Video Retrieval Settings"
    num_clips: int = 10  # clips uniformly spaced in time per video (10 in CSTP / Xu et al.)
    num_crops: int = 1  # 1 = centre crop; 3 = three crops along the long side (x3 test views)
    clip_len: int = 0  # frames per clip T; 0 = the checkpoint's data.clip_len (else 8)
    stride: float = 0.0  # source frames per clip frame; 0 = the checkpoint's data.stride (else 2)
    size: int = 0  # crop side in pixels; 0 = the checkpoint's data.size (else 32)
    clip_norm: bool = True  # L2-normalise each clip feature before averaging the K clips
    batch_size: int = 8  # videos per batch for feature extraction and multi-clip testing
    workers: int = 2  # DataLoader worker processes (0 = load in the main process)
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # autocast (auto: bf16 on CPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    cache_dir: str = ""  # feature cache folder; "" = OUT/eval/cache (no disk cache without OUT)
    train_subset: str = "train"  # subset of the dataset used as gallery / training set
    test_subset: str = "test"  # subset used as queries / test set


@dataclass
class ArtefactSettings:
    """What an evaluation saves for ``vidssl report`` besides the results."""

    num_examples: int = 4  # retrieval query rows and Grad-CAM clips saved in OUT/eval/
    example_frames: int = 4  # frames shown per clip in those figures
    progress: bool = True  # tqdm progress bars


@dataclass
class Outcome:
    """One protocol result before it becomes an :class:`vidssl.eval.stats.EvalResult`."""

    key: str  # label set: a batch key ("label", "appearance") or the protocol's own ("order")
    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None  # a trained network (fine-tune), for the report's Grad-CAM


class EvalJob(TypingProtocol):
    """What a protocol's ``run`` may ask of the caller, for one split and seed."""

    seed: int  # seeds the probe's initialisation and batch order
    label_keys: list[str]  # label sets with a label on every train and test video
    progress: bool  # show progress bars

    def features(self, subset: str, *, reverse: bool = False) -> Features:
        """Frozen video-level features of ``"train"`` / ``"test"`` (cached); ``reverse``: every
        clip played backwards (time flipped before the backbone)."""
        ...

    def labels(self, subset: str, key: str) -> Any:
        """(N,) int64 labels of label set ``key`` for ``subset``, in index order."""
        ...

    def train_network(self, key: str, settings: Any) -> tuple[nn.Module, dict[str, Any]]:
        """The backbone with a new classifier for ``key`` trained end to end (``network``
        protocols); returns the model (``logits(x)``) and details of the run."""
        ...

    def test_loader(self) -> DataLoader:
        """Deterministic ``num_clips`` x ``num_crops`` views of every test video."""
        ...

    def device_and_amp(self) -> tuple[Any, Any]:
        """(torch.device, autocast dtype or None) the evaluation runs with."""
        ...

    @property
    def is_main(self) -> bool:
        """True on the process that scores and records (rank 0 under torchrun)."""
        ...


class Protocol:
    """Base class of an evaluation protocol (see the module docstring)."""

    name: ClassVar[str]
    title: ClassVar[str]  # caption of the protocol's table in `vidssl report`
    prefix: ClassVar[str]  # bench table column prefix ("linear " -> "linear top-1 motion")
    columns: ClassVar[tuple[str, ...]] = ("top1",)  # metrics shown in the bench table
    needs: ClassVar[Needs] = "features"
    settings: ClassVar[type] = ClipSettings
    in_all: ClassVar[bool] = True  # run by `vidssl eval all` (the backbone protocols)

    def run(self, job: EvalJob, settings: Any) -> list[Outcome]:
        """Score the job's split and seed; one :class:`Outcome` per label set."""
        raise NotImplementedError


class FrozenProtocol(Protocol):
    """A protocol scored on the frozen train / test features, once per label set."""

    def run(self, job: EvalJob, settings: Any) -> list[Outcome]:
        train, test = job.features("train"), job.features("test")
        outcomes = []
        for key in job.label_keys:
            metrics, info = self.score(train, test, key, settings, job.seed)
            outcomes.append(Outcome(key, metrics, info))
        return outcomes

    def score(
        self, train: Features, test: Features, key: str, settings: Any, seed: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Metrics and details for label set ``key``."""
        raise NotImplementedError
