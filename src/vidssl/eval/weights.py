"""Reading trained weights: a vidssl checkpoint (or a random init) -> the backbone to evaluate.

Used by the library API (``vidssl.load_backbone``, ``vidssl.embed_videos``), by ``vidssl eval``
and by ``vidssl embed`` / ``vidssl export``. Checkpoints are read with
``torch.load(weights_only=True)``: no pickled code runs on load.

A checkpoint (written by ``vidssl pretrain`` / ``train-supervised``) holds ``model`` (the
method's state dict: backbone weights under ``backbone.``, a two-stream method's flow backbone
under ``flow_backbone.``) and ``config`` (the resolved config: ``model.backbone``,
``model.width``, ``model.args``, the ``data`` clip settings, ``method.flow_backbone``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidssl.config import ConfigError
from vidssl.eval.features import file_sha256
from vidssl.models.backbones import BACKBONES, create_backbone
from vidssl.models.backbones.base import Backbone
from vidssl.models.two_stream import STREAMS, select_stream

RANDOM = "random"  # the checkpoint value for a randomly initialised backbone
# fallbacks for clip settings when neither the caller nor the checkpoint gives them
DEFAULT_CLIP: dict[str, float] = {"clip_len": 8, "stride": 2.0, "size": 32}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; ``str()`` names the file."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; raises :class:`CheckpointError` naming ``path``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: checkpoint file not found") from err
    except Exception as err:  # torn / foreign / pickled-code files
        raise CheckpointError(
            f"{path}: cannot load checkpoint ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a vidssl checkpoint (no 'model' entry)")
    return ckpt


def backbone_state_dict(ckpt: dict[str, Any]) -> dict[str, Tensor]:
    """The pre-trained backbone's weights (keys without the ``backbone.`` prefix)."""
    prefix = "backbone."
    return {k[len(prefix) :]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}


@dataclass
class Weights:
    """What a checkpoint (or ``"random"``) says about the backbone to evaluate."""

    checkpoint: str  # the path, or "random"
    backbone: str  # name in BACKBONES
    width: float  # channel width multiplier
    state: dict[str, Tensor] | None  # backbone state dict; None = random init
    digest: str  # hex sha256 of the checkpoint file ("" for random)
    data: dict[str, Any] = field(default_factory=dict)  # the checkpoint's data config section
    args: dict[str, Any] = field(default_factory=dict)  # the checkpoint's model.args

    def key(self, seed: int) -> str:
        """The cache key of the weights at ``seed`` (only a random init depends on it)."""
        if self.state is None:
            return f"random-{self.backbone}-{self.width:g}-{seed}"
        return self.digest

    def file_tag(self, seed: int) -> str:
        """The short form used in cache file names."""
        return self.key(seed) if self.state is None else f"sha256-{self.digest[:16]}"

    def build(self, seed: int) -> nn.Module:
        """A fresh feature-only backbone in eval mode with these weights (random ones drawn
        from ``seed``). Its ``modalities`` say which clips it consumes."""
        return self.build_rgb(seed).eval()

    def build_rgb(self, seed: int) -> Backbone:
        """The checkpoint's (RGB) backbone, in train mode."""
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
            torch.manual_seed(seed)
            backbone = create_backbone(self.backbone, num_classes=0, width=self.width, **self.args)
        if self.state is not None:
            try:
                backbone.load_state_dict(self.state)
            except RuntimeError as err:
                raise ConfigError(
                    "--checkpoint",
                    f"{self.checkpoint}: its backbone weights do not fit {self.backbone} at "
                    f"width {self.width:g} ({err})",
                ) from err
        return backbone

    def input_args(self) -> dict[str, Any]:
        """Recipe keywords the backbone's non-RGB inputs need (``vidssl.eval.embed.eval_recipe``):
        none for a one-stream checkpoint."""
        return {}

    def clip_settings(
        self, clip_len: int = 0, stride: float = 0.0, size: int = 0
    ) -> dict[str, int | float]:
        """clip_len / stride / size: the given ones (0 = not given), else the checkpoint's
        training settings, else :data:`DEFAULT_CLIP`."""
        given = {"clip_len": clip_len, "stride": stride, "size": size}
        out: dict[str, int | float] = {}
        for name, value in given.items():
            chosen = value or self.data.get(name) or DEFAULT_CLIP[name]
            out[name] = float(chosen) if name == "stride" else int(chosen)
        return out


@dataclass
class StreamWeights(Weights):
    """A two-stream (CVTCL) checkpoint read as one of its streams
    (:data:`vidssl.models.two_stream.STREAMS`): :meth:`build` gives the RGB backbone, the flow
    backbone or :class:`vidssl.models.two_stream.TwoStreamBackbone`."""

    stream: str = "rgb"  # a key of STREAMS
    flow: tuple[str, float, dict[str, Tensor]] | None = None  # name, width, state dict
    flow_root: str | None = None  # stored flow mirroring the data root; None = computed

    def build(self, seed: int) -> nn.Module:
        if self.flow is None:
            raise ConfigError("--stream", f"{self.checkpoint} holds no flow stream (CVTCL)")
        name, width, state = self.flow
        flow = create_backbone(name, num_classes=0, width=width, in_channels=2)
        flow.load_state_dict(state)
        return select_stream(self.build_rgb(seed), flow, self.stream).eval()

    def input_args(self) -> dict[str, Any]:
        """The flow settings the checkpoint was trained with, and where stored flow is."""
        trained = self.data.get("recipe") or {}
        flow = {k: trained[k] for k in ("flow_method", "flow_bound", "flow_scale") if k in trained}
        return {**flow, **({"flow_root": self.flow_root} if self.flow_root else {})}


def open_checkpoint(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint file's contents for a command: ``FileNotFoundError`` for a missing file,
    :class:`ConfigError` on ``--checkpoint`` for one that cannot be read."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        raise ConfigError("--checkpoint", str(err)) from err


def read_weights(
    checkpoint: str | Path,
    *,
    backbone: str | None = None,
    width: float | None = None,
    stream: str = "rgb",
    flow_root: str | None = None,
) -> Weights:
    """Read a vidssl checkpoint's backbone, or describe a random init (``checkpoint="random"``,
    which needs ``backbone`` and ``width``). ``stream`` other than ``"rgb"`` reads a two-stream
    (CVTCL) checkpoint as its flow stream or both streams averaged (:class:`StreamWeights`;
    flow read from ``flow_root``, mirroring the data root, or computed). Raises
    :class:`ConfigError` (bad input, naming the file or option) or ``FileNotFoundError``."""
    checkpoint = str(checkpoint)
    if stream not in STREAMS:
        raise ConfigError("--stream", f"expected one of {list(STREAMS)}, got {stream!r}")
    if checkpoint == RANDOM:
        if backbone is None or width is None:
            raise ConfigError("--backbone/--width", "both are required with --checkpoint random")
        check_backbone(backbone, width)
        weights = Weights(RANDOM, backbone, float(width), None, "")
        return weights if stream == "rgb" else StreamWeights(**vars(weights), stream=stream)
    path = Path(checkpoint)
    ckpt = open_checkpoint(path)
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    model = config.get("model", {}) if isinstance(config.get("model"), dict) else {}
    name = backbone or model.get("backbone")
    w = width if width is not None else model.get("width")
    if name is None or w is None:
        raise ConfigError(
            "--checkpoint",
            f"{path} records no model.backbone / model.width; pass --backbone and --width",
        )
    check_backbone(str(name), float(w))
    state = backbone_state_dict(ckpt)
    if not state:
        raise ConfigError("--checkpoint", f"{path}: no 'backbone.' weights in its model state")
    data = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    # an explicit --backbone means the checkpoint's own backbone arguments may not apply
    args = model.get("args") if backbone is None and isinstance(model.get("args"), dict) else {}
    weights = Weights(
        str(path), str(name), float(w), state, file_sha256(path), dict(data), dict(args)
    )
    if stream == "rgb":
        return weights
    method = config.get("method", {}) if isinstance(config.get("method"), dict) else {}
    prefix = "flow_backbone."
    flow_state = {k[len(prefix) :]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    flow = None
    if flow_state and "flow_backbone" in method:
        flow = (str(method["flow_backbone"]), float(method["flow_width"]), flow_state)
    return StreamWeights(**vars(weights), stream=stream, flow=flow, flow_root=flow_root)


def check_backbone(name: str, width: float) -> None:
    """Raises :class:`ConfigError` for an unknown backbone name or a width <= 0."""
    if name not in BACKBONES:
        raise ConfigError(
            "--backbone", f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}"
        )
    if not width > 0:
        raise ConfigError("--width", f"must be > 0, got {width}")
