"""Loading a user-supplied OpenAI CLIP checkpoint (ViT image tower + text transformer).

``load_clip_checkpoint(path)`` reads either the TorchScript archive OpenAI distributes
(``ViT-B-32.pt``, ``ViT-B-16.pt``: ``torch.jit.load(map_location="cpu").state_dict()``) or a
plain state dict saved with ``torch.save`` (optionally wrapped as ``{"state_dict": ...}``), casts
floating tensors to fp32 and infers every size from tensor shapes, as CLIP's ``build_model``
does: patch size from ``visual.conv1.weight``, image size from the positional embedding, layer
counts from the ``resblocks`` keys, heads = width // 64. Nothing is ever downloaded.

The configs here are plain dataclasses so that the model files (``clip_video``, ``clip_text``)
import them without a cycle.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

# Non-parameter integers OpenAI's TorchScript archives carry at the top level.
META_KEYS = ("input_resolution", "context_length", "vocab_size")
TEXT_REQUIRED = ("token_embedding.weight", "positional_embedding", "ln_final.weight")


@dataclass(frozen=True)
class VisionConfig:
    """ViT image tower sizes. ``embed_dim`` is the joint space (``visual.proj`` columns)."""

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    embed_dim: int = 512

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "width", "layers", "heads", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"VisionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(
                f"VisionConfig.width ({self.width}) must be a multiple of heads ({self.heads})"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"VisionConfig.image_size ({self.image_size}) must be a multiple of "
                f"patch_size ({self.patch_size})"
            )

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class TextConfig:
    """CLIP text transformer sizes (GPT-2 style, causal; Sec. 3.3: 12 layers, 512 wide, 8 heads)."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    layers: int = 12
    heads: int = 8
    embed_dim: int = 512

    def __post_init__(self) -> None:
        for name in ("context_length", "vocab_size", "width", "layers", "heads", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"TextConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(
                f"TextConfig.width ({self.width}) must be a multiple of heads ({self.heads})"
            )


@dataclass
class ClipCheckpoint:
    """A CLIP state dict (fp32, OpenAI key layout) with the sizes inferred from it."""

    path: str
    state_dict: dict[str, Tensor]
    vision: VisionConfig
    text: TextConfig
    logit_scale: float | None  # log of the learned inverse temperature, when present

    def visual_state(self) -> dict[str, Tensor]:
        """The ``visual.*`` entries with the prefix removed."""
        return {
            k[len("visual.") :]: v for k, v in self.state_dict.items() if k.startswith("visual.")
        }

    def text_state(self) -> dict[str, Tensor]:
        """The text transformer's entries (everything but ``visual.*``, ``logit_scale``, meta)."""
        skip = ("logit_scale", *META_KEYS)
        return {
            k: v
            for k, v in self.state_dict.items()
            if not k.startswith("visual.") and k not in skip
        }


def _layer_count(state: dict[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in state if (m := pattern.match(k))})


def infer_vision_config(state: dict[str, Tensor], source: str = "state dict") -> VisionConfig:
    """Sizes of the ViT image tower from ``visual.*`` shapes (as CLIP's ``build_model``)."""
    if "visual.conv1.weight" not in state:
        kind = "a ResNet" if any(k.startswith("visual.layer1.") for k in state) else "no ViT"
        raise ValueError(
            f"{source}: {kind} image tower (no 'visual.conv1.weight'); only ViT CLIP checkpoints "
            "(ViT-B/32, ViT-B/16, ...) are supported"
        )
    conv = state["visual.conv1.weight"]  # (width, 3, patch, patch)
    width, patch = conv.shape[0], conv.shape[-1]
    tokens = state["visual.positional_embedding"].shape[0]
    grid = math.isqrt(tokens - 1)
    if grid * grid != tokens - 1:
        raise ValueError(
            f"{source}: visual.positional_embedding has {tokens} rows, not 1 + a square grid"
        )
    return VisionConfig(
        image_size=grid * patch,
        patch_size=patch,
        width=width,
        layers=_layer_count(state, "visual.transformer.resblocks."),
        heads=max(1, width // 64),
        embed_dim=state["visual.proj"].shape[1],
    )


def infer_text_config(state: dict[str, Tensor], source: str = "state dict") -> TextConfig:
    """Sizes of the text transformer from its shapes (heads = width // 64, as CLIP)."""
    missing = [k for k in (*TEXT_REQUIRED, "text_projection") if k not in state]
    if missing:
        raise ValueError(f"{source}: not a CLIP state dict, missing {', '.join(missing)}")
    width = state["ln_final.weight"].shape[0]
    return TextConfig(
        context_length=state["positional_embedding"].shape[0],
        vocab_size=state["token_embedding.weight"].shape[0],
        width=width,
        layers=_layer_count(state, "transformer.resblocks."),
        heads=max(1, width // 64),
        embed_dim=state["text_projection"].shape[1],
    )


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """TorchScript archive first (OpenAI's release format), then a plain ``torch.save`` file."""
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is OpenAI's format
            warnings.simplefilter("ignore", DeprecationWarning)
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except RuntimeError:
        pass  # not TorchScript: a plain state dict
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of every kind
        raise ValueError(
            f"CLIP checkpoint {path}: neither a TorchScript archive nor a torch.save'd state "
            f"dict ({type(exc).__name__}: {exc})"
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"CLIP checkpoint {path}: expected a dict of tensors, got {type(obj)}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_clip_checkpoint(path: str | Path) -> ClipCheckpoint:
    """Read the CLIP checkpoint at ``path`` (TorchScript or state dict), fp32, sizes inferred."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"CLIP checkpoint not found: {p} (pass the path of an OpenAI CLIP file such as "
            "ViT-B-32.pt; vidssl never downloads weights)"
        )
    raw = _read_state_dict(p)
    state = {k: v.float() if v.is_floating_point() else v for k, v in raw.items()}
    source = f"CLIP checkpoint {p}"
    scale = state.get("logit_scale")
    return ClipCheckpoint(
        path=str(p),
        state_dict=state,
        vision=infer_vision_config(state, source),
        text=infer_text_config(state, source),
        logit_scale=float(scale) if scale is not None else None,
    )


def check_load_result(
    source: str, missing: list[str], unexpected: list[str], new_prefixes: tuple[str, ...]
) -> None:
    """Raise unless every missing key belongs to a new module and nothing is unexpected."""
    pattern = re.compile("|".join(re.escape(p) for p in new_prefixes)) if new_prefixes else None
    bad_missing = [k for k in missing if pattern is None or not pattern.search(k)]
    if bad_missing or unexpected:
        raise ValueError(
            f"{source}: state dict does not match the model; missing {bad_missing[:8]}, "
            f"unexpected {unexpected[:8]}"
        )
