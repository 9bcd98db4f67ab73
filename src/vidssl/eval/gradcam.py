"""Grad-CAM (Selvaraju et al. 2017) for video backbones, with a retrieval-similarity target.

CSTP (section "Evaluation on Video Retrieval Task", Fig. 6) visualises the activations of the
last convolutional layers with CAM. Plain CAM needs a trained classifier; Grad-CAM needs only
a scalar score, so it also works for a pretrained-only backbone: the score is the cosine
similarity between the clip's pooled feature and a reference feature (e.g. its top-1 retrieval
neighbour or its class centroid). With a classifier head the score can be a class logit.

    A = last conv stage feature map       (N, C', T', H', W')
    alpha_c = mean_{t,h,w} d score / d A   (N, C')
    cam = ReLU(sum_c alpha_c A_c)          (N, T', H', W') -> trilinear to (T, H, W), / max
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidssl.eval.payload import load_payload, save_payload
from vidssl.models.backbones.base import Backbone

CAM_EXAMPLES_FORMAT = "vidssl.cam_examples/1"


# modules whose 5-D output is a pooled map, never the "last conv stage"
POOLING_LAYERS: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool3d,
    nn.AvgPool3d,
    nn.MaxPool3d,
)


def _forward_capturing(
    backbone: nn.Module, x: Tensor, layer: nn.Module | str | None
) -> tuple[Tensor, Tensor]:
    """Run the backbone: (its ``forward_features`` output, the map the CAM weighs
    (N, C', T', H', W')).

    ``layer=None`` on a :class:`vidssl.models.backbones.base.Backbone` weighs its
    ``forward_features`` map. Otherwise ``layer`` (a submodule or its dotted name) is hooked;
    with no layer, the last 5-D output (in execution order) that is not the output of a
    pooling layer is taken, i.e. the last conv stage.
    """
    if layer is None and isinstance(backbone, Backbone):
        fmap = backbone.forward_features(x)
        return fmap, fmap
    if isinstance(layer, str):
        try:
            layer = backbone.get_submodule(layer)
        except AttributeError as exc:
            raise ValueError(f"Grad-CAM: backbone has no submodule {layer!r}") from exc
    targets = [layer] if layer is not None else [m for m in backbone.modules() if m is not backbone]
    captured: list[Tensor] = []  # 5-D outputs in execution order
    pooled: set[int] = set()  # ids of the outputs of pooling layers

    def hook(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and output.ndim == 5:
            captured.append(output)
            if isinstance(module, POOLING_LAYERS):
                pooled.add(id(output))

    handles = [m.register_forward_hook(hook) for m in targets]
    try:
        out = backbone.forward_features(x)
    finally:
        for handle in handles:
            handle.remove()
    # a container returning its pooling child's output yields the same tensor: skip it too
    maps = [t for t in captured if id(t) not in pooled] if layer is None else captured
    if not maps:
        where = f"layer {layer!r}" if layer is not None else "the backbone"
        raise ValueError(
            f"Grad-CAM: {where} produced no (N, C, T, H, W) feature map; "
            "pass layer= (a submodule or its name)"
        )
    return out, maps[-1]


def grad_cam(
    backbone: nn.Module,
    clips: Tensor,
    *,
    reference: Tensor | None = None,
    class_index: Tensor | int | None = None,
    layer: nn.Module | str | None = None,
) -> Tensor:
    """Grad-CAM maps of ``clips`` upsampled to the clip size and scaled to [0, 1].

    clips: (N, C, T, H, W) (or one clip (C, T, H, W)).
    reference: (N, D) or (D,) -> score = cos(pooled features of clip, reference) (no head needed).
    class_index: (N,) or int -> score = forward(clip)[class_index] (needs a classifier head).
    ``backbone``: ``forward_features`` (the map) and ``forward_head(map, pre_logits=...)``.
    Returns (N, T, H, W) (or (T, H, W) for one clip); each map is divided by its maximum, an
    all-zero map (no positive evidence) stays zero. The backbone runs in eval mode; its
    parameters need not require grad.
    """
    if (reference is None) == (class_index is None):
        raise ValueError("grad_cam: give exactly one of reference= or class_index=")
    single = clips.ndim == 4
    x = clips.unsqueeze(0) if single else clips  # (C, T, H, W) -> (1, C, T, H, W)
    if x.ndim != 5:
        raise ValueError(f"grad_cam: clips must be (N, C, T, H, W), got {tuple(clips.shape)}")
    n = x.shape[0]
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.enable_grad():
            x = x.detach().float().requires_grad_(True)  # grads flow even through frozen weights
            out, fmap = _forward_capturing(backbone, x, layer)  # map, (N, C', T', H', W')
            if reference is not None:
                feats = backbone.forward_head(out, pre_logits=True)  # (N, D)
                ref = (
                    reference.to(feats).expand(n, -1)
                    if reference.ndim == 1
                    else reference.to(feats)
                )
                score = F.cosine_similarity(feats, ref, dim=1)  # (N,)
            else:
                logits = backbone.forward_head(out)  # (N, num_classes)
                idx = torch.as_tensor(class_index, device=logits.device).long().expand(n)
                score = logits.gather(1, idx[:, None])[:, 0]  # (N,)
            (grads,) = torch.autograd.grad(score.sum(), fmap)  # (N, C', T', H', W')
    finally:
        backbone.train(was_training)
    weights = grads.mean(dim=(2, 3, 4))  # (N, C')
    cam = F.relu(torch.einsum("nc,ncthw->nthw", weights, fmap.detach()))  # (N, T', H', W')
    cam = F.interpolate(cam[:, None], size=x.shape[2:], mode="trilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None, None]  # (N, 1, 1, 1)
    cam = (cam / peak).clamp(0.0, 1.0)  # (N, T, H, W)
    return cam[0] if single else cam


def class_centroids(feats: Tensor, labels: Tensor, num_classes: int | None = None) -> Tensor:
    """L2-normalised mean feature of each class: feats (N, D), labels (N,) -> (C, D).

    A class without items gets a zero row.
    """
    c = num_classes or int(labels.max().item()) + 1
    onehot = F.one_hot(labels.long(), c).float()  # (N, C)
    sums = torch.einsum("nc,nd->cd", onehot, feats.float())
    return F.normalize(sums, dim=1)


@dataclass
class CamExamples:
    """What the report's Grad-CAM figure shows, saved by the eval run.

    frames: (N, S, H, W, 3) uint8, S frames of each clip (de-normalised);
    cams: (N, S, H, W) float in [0, 1], the maps at the same frames; titles: N strings.
    """

    frames: Tensor
    cams: Tensor
    titles: list[str]

    def save(self, path: str | Path) -> Path:
        """Write as plain tensors + strings (loadable with ``weights_only=True``)."""
        return save_payload(self, path, CAM_EXAMPLES_FORMAT, str_lists=("titles",))

    @classmethod
    def load(cls, path: str | Path) -> CamExamples:
        """Read a file written by :meth:`save`; errors name the file."""
        path = Path(path)
        payload = load_payload(path, CAM_EXAMPLES_FORMAT, "Grad-CAM examples")
        examples = cls(**payload)
        if examples.frames.shape[:4] != examples.cams.shape:
            raise ValueError(
                f"{path}: frames {tuple(examples.frames.shape)} and cams "
                f"{tuple(examples.cams.shape)} disagree"
            )
        return examples
