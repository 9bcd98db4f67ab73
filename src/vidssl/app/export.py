"""``vidssl export CKPT --format torchvision|onnx --out FILE``: the backbone for other programs.

    vidssl export runs/cvrl/last.pt --format torchvision --out r3d_18_cvrl.pth
    vidssl export runs/cvrl/last.pt --format onnx --out r3d_18_cvrl.onnx

torchvision: a plain state dict (``torch.save``) that ``torchvision.models.video``'s model of
the same name loads with ``strict=True`` (head removed, or ``--num-classes N`` for a zero
head; see :mod:`vidssl.eval.export`). onnx: the pooled features as an ONNX graph (input
``clips`` (N, C, T, H, W), output ``features`` (N, D)); with onnxruntime installed its output
is checked against PyTorch's (max abs difference printed; exit 1 above 1e-4).

Exit codes: 0 done, 1 export failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidssl.app.eval_settings import add_weights_arguments

ONNX_TOLERANCE = 1e-4  # max abs difference between onnxruntime's and PyTorch's features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="vidssl checkpoint, or 'random'")
    parser.add_argument("--format", required=True, choices=("torchvision", "onnx"))
    parser.add_argument("--out", required=True, type=Path, metavar="FILE")
    add_weights_arguments(parser, "two-stream checkpoints (onnx only for flow / both)")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=0,
        help="torchvision: add a zero-initialised head of N classes (default 0: no head)",
    )
    parser.add_argument(
        "--clip-len", type=int, default=0, help="onnx: frames per clip (default: the checkpoint's)"
    )
    parser.add_argument(
        "--size", type=int, default=0, help="onnx: crop side (default: the checkpoint's)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from vidssl.config import ConfigError
    from vidssl.eval.export import example_clips, export_onnx, torchvision_state_dict
    from vidssl.eval.weights import read_weights

    try:
        weights = read_weights(
            args.checkpoint, backbone=args.backbone, width=args.width, stream=args.stream
        )
        if args.format == "torchvision":
            state = torchvision_state_dict(weights, args.num_classes)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, args.out)
            head = f"a zero {args.num_classes}-class head" if args.num_classes else "no head"
            print(
                f"wrote {args.out}: torchvision.models.video.{weights.backbone} state dict ({len(state)} tensors, {head})"
            )
            return 0
    except (ConfigError, FileNotFoundError) as err:
        print(f"vidssl export: {err}", file=sys.stderr)
        return 2
    clip = weights.clip_settings(args.clip_len, 0.0, args.size)
    model = weights.build(0)
    example = example_clips(model, clip, batch=2)
    try:
        export_onnx(model, args.out, example)
    except RuntimeError as err:
        print(f"vidssl export: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: features of clips {tuple(example.shape[1:])} (batch dynamic)")
    return check_onnx(args.out, model, example)


def check_onnx(path: Path, model: Any, example: Any) -> int:
    """Compare onnxruntime's output with PyTorch's on ``example``; 1 when above tolerance."""
    import importlib.util

    import torch

    if importlib.util.find_spec("onnxruntime") is None:
        print("onnxruntime not installed: output not checked (pip install 'vidssl[export]')")
        return 0
    import onnxruntime

    from vidssl.models.backbones.base import pooled_features

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"clips": example.numpy()})
    with torch.no_grad():
        want = pooled_features(model, example).numpy()
    diff = float(abs(got - want).max())
    print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e} (tolerance {ONNX_TOLERANCE:g})")
    return 0 if diff <= ONNX_TOLERANCE else 1
