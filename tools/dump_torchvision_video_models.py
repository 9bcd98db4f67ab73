"""Dump torchvision's video-model state-dict layouts into a test fixture.

Not run in CI: torchvision cannot live in the project venv. Run it from a throwaway venv::

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python tools/dump_torchvision_video_models.py

For each model (default ``num_classes=400``, no pretrained weights, no network) it writes every
state-dict key with its shape, the total parameter count, and a reference forward: the eval-mode
logits for a fixed input `(1, 3, 8, 32, 32)` after loading deterministic "synthetic" weights (a
scaled sine of the element index, see `synthetic_state_dict`; `tests/test_backbones.py` holds an
identical copy) into ``tests/fixtures/torchvision_video_models.json``. For S3D the logits are
computed on globally average-pooled features (torchvision's fixed 2x7x7 pool needs 16x224x224).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import video

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torchvision_video_models.json"
)

INPUT_SHAPE = (1, 3, 8, 32, 32)


def synthetic_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Deterministic weights that do not depend on torch's RNG (same in every torch version)."""
    out: dict[str, Tensor] = {}
    for j, (key, ref) in enumerate(model.state_dict().items()):
        period = torch.sin(0.61 * torch.arange(1009, dtype=torch.float64) + 0.37 * j).float()
        s = period.repeat(ref.numel() // 1009 + 1)[: ref.numel()]  # a sine, period 1009 elements
        if key.endswith("num_batches_tracked"):
            v = torch.zeros(())
        elif key.endswith("running_var"):
            v = 1.0 + 0.5 * s.abs()
        elif key.endswith("running_mean"):
            v = 0.1 * s
        elif ref.ndim > 1:  # conv / linear weight: variance 2 / fan_in (sin^2 averages 1/2)
            v = s * (4.0 / ref[0].numel()) ** 0.5
        elif key.endswith("weight"):  # norm scale
            v = 1.0 + 0.1 * s
        else:  # biases
            v = 0.1 * s
        out[key] = v.reshape(ref.shape).to(ref.dtype)
    return out


def synthetic_input(shape: tuple[int, ...] = INPUT_SHAPE) -> Tensor:
    """x: (1, 3, 8, 32, 32), a fixed float32 pattern in [-1, 1]."""
    n = 1
    for d in shape:
        n *= d
    return torch.sin(0.013 * torch.arange(n, dtype=torch.float64) ** 1.1).reshape(shape).float()


def plain_logits(model: nn.Module, x: Tensor) -> Tensor:
    """x: (N, 3, T, H, W) -> (N, 400) through torchvision's own forward."""
    return model(x)


def s3d_gap_logits(model: nn.Module, x: Tensor) -> Tensor:
    """S3D with global average pooling instead of the fixed 2x7x7 pool (see module docstring)."""
    pooled = model.features(x).mean(dim=(2, 3, 4), keepdim=True)  # (N, 1024, 1, 1, 1)
    return model.classifier(pooled).flatten(1)  # (N, 400, 1, 1, 1) -> (N, 400)


MODELS: dict[str, tuple[Callable[..., nn.Module], Callable[[nn.Module, Tensor], Tensor]]] = {
    "r3d_18": (video.r3d_18, plain_logits),
    "r2plus1d_18": (video.r2plus1d_18, plain_logits),
    "s3d": (video.s3d, s3d_gap_logits),
}


@torch.no_grad()
def reference_logits(
    model: nn.Module, logits_fn: Callable[[nn.Module, Tensor], Tensor]
) -> list[float]:
    """Eval-mode logits (400,) of `model` with synthetic weights on the synthetic input."""
    model.load_state_dict(synthetic_state_dict(model), strict=True)
    model.eval()
    logits = logits_fn(model, synthetic_input())
    return [float(f"{v:.7g}") for v in logits[0].tolist()]


def describe(
    model: nn.Module, logits_fn: Callable[[nn.Module, Tensor], Tensor]
) -> dict[str, object]:
    """Key -> shape of every state-dict entry, number of parameters, reference logits."""
    return {
        "num_params": sum(p.numel() for p in model.parameters()),
        "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
        "reference_input": list(INPUT_SHAPE),
        "reference_logits": reference_logits(model, logits_fn),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    dump: dict[str, object] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "num_classes": 400,
        "models": {
            name: describe(build(weights=None, num_classes=400), logits_fn)
            for name, (build, logits_fn) in MODELS.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dump, indent=1)
    # one entry per line: collapse number lists "[\n 64,\n 3\n]" -> "[64, 3]"
    text = re.sub(
        r"\[([\d,\s.eE+-]*)\]",
        lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]",
        text,
    )
    args.out.write_text(text + "\n")
    for name, info in dump["models"].items():  # type: ignore[union-attr]
        print(f"{name}: {len(info['state_dict'])} keys, {info['num_params']:,} parameters")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
