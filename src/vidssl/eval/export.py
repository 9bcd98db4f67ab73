"""A trained backbone for other programs: a torchvision state dict, or an ONNX graph.

torchvision. Our ``r3d_18``, ``r2plus1d_18`` and ``s3d`` at width 1 keep the key layout of
``torchvision.models.video.<same name>`` (tested against a dump of torchvision's keys in
``tests/fixtures/torchvision_video_models.json``), so the export is the backbone's state
dict. A self-supervised backbone has no classifier; with ``num_classes=0`` the export holds
none, and loads with ``strict=True`` into torchvision's model whose head is removed
(``model.fc = nn.Identity()``; ``model.classifier = nn.Identity()`` for S3D), which then
returns the pooled features. With ``num_classes=N`` a zero-initialised (untrained) head of N
classes is added, so that ``<model>(num_classes=N)`` loads it as it stands. torchvision is
never imported here.

ONNX. The graph computes the pooled features (``pooled_features``: ``forward_head(
forward_features(x), pre_logits=True)``): input ``clips`` ``(N, C, T, H, W)`` float
(dynamic N), output ``features`` ``(N, D)``. It needs the ``export`` extra (onnx, onnxscript;
onnxruntime to check it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidssl.config import ConfigError
from vidssl.eval.weights import Weights
from vidssl.models.backbones.base import MODALITY_CHANNELS, pooled_features
from vidssl.models.two_stream import stream_of

# our backbone name -> (torchvision.models.video builder, its classifier attribute)
TORCHVISION_MODELS: dict[str, tuple[str, str]] = {
    "r3d_18": ("r3d_18", "fc"),
    "r2plus1d_18": ("r2plus1d_18", "fc"),
    "s3d": ("s3d", "classifier"),
}


def torchvision_state_dict(weights: Weights, num_classes: int = 0) -> dict[str, Tensor]:
    """The backbone of ``weights`` as ``torchvision.models.video``'s state dict (see module doc).

    Raises :class:`ConfigError` when torchvision has no model of this layout (other
    backbones, width != 1, backbone arguments, the flow stream).
    """
    if weights.backbone not in TORCHVISION_MODELS:
        raise ConfigError(
            "--format",
            f"torchvision has no model of {weights.backbone!r}; torchvision export works for "
            f"{sorted(TORCHVISION_MODELS)} (use --format onnx for any backbone)",
        )
    model = weights.build(0)
    if weights.width != 1.0 or weights.args or model.modalities != ("rgb",):
        raise ConfigError(
            "--format",
            f"torchvision's {weights.backbone} is the RGB model at width 1 without extra "
            f"arguments; this checkpoint has width {weights.width:g}, arguments "
            f"{weights.args or 'none'}, stream {stream_of(model.modalities)} (use --format onnx)",
        )
    if num_classes < 0:
        raise ConfigError("--num-classes", f"must be >= 0, got {num_classes}")
    if num_classes:
        model.reset_classifier(num_classes)
        head = getattr(model, TORCHVISION_MODELS[weights.backbone][1])
        for p in head.parameters():
            nn.init.zeros_(p)  # an untrained head: logits 0 until the user trains it
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class FeatureGraph(nn.Module):
    """``forward(clips)``: the backbone's pooled features, what the ONNX graph computes."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, clips: Tensor) -> Tensor:
        return pooled_features(self.backbone, clips)  # (N, C, T, H, W) -> (N, D)


def export_onnx(backbone: nn.Module, path: str | Path, example: Tensor, opset: int = 18) -> Path:
    """Write the backbone's pooled features as an ONNX graph with a dynamic batch size.

    example: ``(N, C, T, H, W)`` clips fixing C, T, H and W of the graph.
    """
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"ONNX export needs {', '.join(missing)}: pip install 'vidssl[export]'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = FeatureGraph(backbone).eval()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=["clips"],
            output_names=["features"],
            dynamic_shapes={"clips": {0: batch}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    return path


def example_clips(model: nn.Module, clip: dict[str, int | float], batch: int = 1) -> Tensor:
    """Random clips of the input ``model`` consumes (its ``modalities``):
    ``(batch, C, clip_len, size, size)``."""
    channels = sum(MODALITY_CHANNELS[m] for m in model.modalities)
    t, s = int(clip["clip_len"]), int(clip["size"])
    return torch.randn(batch, channels, t, s, s, generator=torch.Generator().manual_seed(0))


__all__ = [
    "TORCHVISION_MODELS",
    "FeatureGraph",
    "example_clips",
    "export_onnx",
    "torchvision_state_dict",
]
