"""The Python API for using a trained model in another program (``vidssl.load_backbone``,
``vidssl.embed_videos``, ``vidssl.read_clip``; see the README).

Everything here is library code (no ``vidssl.app`` import): checkpoints are read by
:mod:`vidssl.eval.weights`, clips are built by the evaluation recipe and embeddings by
:func:`vidssl.eval.features.extract_features`, exactly as ``vidssl eval`` / ``vidssl embed``
do, so ``embed_videos`` returns the rows that ``vidssl embed`` writes for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from vidssl.eval.weights import read_weights


def load_backbone(
    checkpoint: str | Path,
    *,
    backbone: str | None = None,
    width: float | None = None,
    stream: str = "rgb",
    seed: int = 0,
) -> nn.Module:
    """The backbone of a vidssl checkpoint, in eval mode, without classifier.

    ``checkpoint``: ``last.pt`` of ``vidssl pretrain`` / ``train-supervised`` (the backbone
    name and width come from its saved config; ``backbone`` / ``width`` override them), or
    ``"random"`` (then both are required; weights drawn from ``seed``). ``stream`` picks the
    RGB backbone, the flow backbone or both averaged of a two-stream (CVTCL) checkpoint.

    ``model(x)`` (= ``model.forward_head(model.forward_features(x), pre_logits=True)``, timm's
    meaning; ``forward_features`` alone is the unpooled map): ``(N, C, T, H, W)`` float clips
    (as :func:`read_clip` returns them, stacked) -> ``(N, D)`` pooled features. Raises ``FileNotFoundError`` or
    ``vidssl.config.ConfigError`` (a ``ValueError``) naming the file.
    """
    return read_weights(checkpoint, backbone=backbone, width=width, stream=stream).build(seed)


def read_clip(
    path: str | Path,
    start: float = 0.0,
    *,
    clip_len: int = 8,
    stride: float = 2.0,
    size: int = 112,
) -> Tensor:
    """One clip of a video (or ``.vfs`` file) ready for a backbone: ``(3, clip_len, size, size)``.

    Frames ``start_frame + floor(i * stride)`` for ``i < clip_len`` with ``start_frame`` =
    ``round(start * fps)`` (seconds), looped at the end of a short video; upright (rotation
    metadata applied); short side resized to ``size``, centre square, float normalised with
    the Kinetics mean / std (the evaluation transform). Raises
    ``vidssl.data.video.VideoDecodeError`` naming the file.
    """
    from vidssl.data import samplers
    from vidssl.data.sources import open_video
    from vidssl.data.transforms import EvalTransform

    with open_video(path) as video:  # type: ignore[attr-defined]
        first = max(0, round(start * video.fps))
        if first >= video.num_frames:
            raise ValueError(
                f"{path}: start {start} s is past the end ({video.num_frames} frames at "
                f"{video.fps:g} fps)"
            )
        idx = samplers.fit_indices(
            first + samplers.clip_offsets(clip_len, stride), video.num_frames
        )  # (T,)
        frames = video.get_frames(idx)  # (T, H, W, 3) uint8
    return EvalTransform(size=size)(frames)  # (3, T, size, size)


def embed_videos(
    paths: Sequence[str | Path],
    checkpoint: str | Path,
    *,
    backbone: str | None = None,
    width: float | None = None,
    stream: str = "rgb",
    num_clips: int = 10,
    num_crops: int = 1,
    clip_len: int = 0,
    stride: float = 0.0,
    size: int = 0,
    batch_size: int = 8,
    workers: int = 0,
    device: str | torch.device = "cpu",
    clip_norm: bool = True,
) -> Tensor:
    """One L2-normalised embedding per video: ``(len(paths), D)`` float32, row ``i`` for
    ``paths[i]``.

    ``num_clips`` clips uniformly spaced over each video (x ``num_crops`` crops) go through
    the backbone; clip features are L2-normalised, averaged and normalised again (the
    evaluation protocol). ``clip_len`` / ``stride`` / ``size`` default (0) to the values the
    checkpoint was trained with. ``checkpoint``, ``backbone``, ``width``, ``stream``: see
    :func:`load_backbone`. Raises ``ValueError`` naming every unreadable file.
    """
    from vidssl.eval.embed import embed_loader, eval_recipe, iter_embedding_chunks

    weights = read_weights(checkpoint, backbone=backbone, width=width, stream=stream)
    clip = weights.clip_settings(clip_len, stride, size)
    model = weights.build(0).to(device)
    recipe = eval_recipe(
        model.modalities, clip, num_clips, num_crops, input_args=weights.input_args()
    )
    loader = embed_loader(list(paths), recipe, batch_size=batch_size, workers=workers)
    out: Tensor | None = None
    errors: list[str] = []
    for chunk in iter_embedding_chunks(model, loader, device=device, clip_norm=clip_norm):
        errors += [f"{r.path}: {r.error}" for r in chunk.records if r.error]
        if len(chunk.indices):
            if out is None:
                out = torch.zeros(len(paths), chunk.feats.shape[1])
            out[chunk.indices] = chunk.feats
    if errors:
        raise ValueError(f"{len(errors)} unreadable video(s):\n  " + "\n  ".join(errors))
    assert out is not None  # paths is non-empty and every video was read
    return out
