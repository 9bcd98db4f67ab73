r"""Which pace clips does a trained pace head get wrong? Confusion over held-out videos.

A probe of what a pretext run learned, not of speed. It rebuilds the method of a finished
``vidssl pretrain`` run (``RUN/config.yaml``, or the bench cell's ``config.yaml`` one level up)
from ``RUN/last.pt``, draws ``--clips`` clips per held-out video with the run's own pretext
recipe (``--subset``, default ``test``: videos the run never trained on; the training
transform, so crops and jitter are as in training) and prints, for the ``pace`` head:

- the pace x pace confusion matrix (rows: true pace, columns: predicted);
- the accuracy per motion class of the video, so that a class whose pace is ambiguous (a
  slow rotation, say) shows up;
- the accuracy on the training videos too (``--subset train``), for comparison with the logged
  training accuracy.

    python benchmarks/pace_confusion.py runs/ablate-motion/cells/pretext-pace-fullframe-2400/seed0/run

Eval mode (BatchNorm running statistics), bf16 autocast off, one thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from vidssl.app.train.build import build_dataset, build_method
from vidssl.config import load_config
from vidssl.eval.weights import load_checkpoint
from vidssl.models.backbones.base import pooled_features


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished run folder (holds last.pt)")
    p.add_argument("--subset", default="test", help="data subset to draw clips from")
    p.add_argument("--clips", type=int, default=4, help="clips per video (default 4)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def run_config(run: Path) -> Path:
    for path in (run / "config.yaml", run.parent / "config.yaml"):
        if path.is_file():
            return path
    raise SystemExit(f"{run}: no config.yaml in the run folder or its parent")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(run_config(args.run), [f"data.subset={args.subset}"])
    if cfg.method.name != "pretext" or "pace" not in cfg.method.hparams.get("tasks", ()):
        raise SystemExit(f"{args.run}: not a pretext run with a pace task ({cfg.method.name})")
    method = build_method(cfg)
    method.load_state_dict(load_checkpoint(args.run / "last.pt")["model"])
    method.eval()
    head = method.heads.heads["pace"]  # the pretext method's pace classifier
    dataset = build_dataset(cfg, method, train=True)  # the training recipe, held-out videos
    classes = dataset.classes
    paces = list(method.recipe_overrides["paces"])
    confusion = np.zeros((len(paces), len(paces)), dtype=int)
    per_class: dict[int, list[int]] = {}
    samples = [(v, c) for v in range(len(dataset)) for c in range(args.clips)]
    with torch.no_grad():
        for start in range(0, len(samples), args.batch):
            chunk = samples[start : start + args.batch]
            items = [dataset[(c, v)] for v, c in chunk]  # clip c of video v
            x = torch.stack([item["video"] for item in items])  # (N, C, T, H, W)
            y = torch.tensor([int(item["pretext"]["pace"]) for item in items])
            pred = head(pooled_features(method.backbone, x)).argmax(1)
            for item, t, p in zip(items, y.tolist(), pred.tolist(), strict=True):
                confusion[t, p] += 1
                per_class.setdefault(int(item["label"]), []).append(int(t == p))
    total = confusion.sum()
    print(
        f"{args.run} ({args.subset}, {total} clips): pace accuracy {np.trace(confusion) / total:.3f}"
    )
    print("true \\ predicted " + " ".join(f"{p}x".rjust(6) for p in paces))
    for i, p in enumerate(paces):
        row = confusion[i]
        print(
            f"{p}x".ljust(17)
            + " ".join(f"{n:6d}" for n in row)
            + f"   ({row[i] / max(row.sum(), 1):.3f})"
        )
    print("accuracy by motion class:")
    for label in sorted(per_class):
        hits = per_class[label]
        print(f"  {classes[label]:<12} {np.mean(hits):.3f} ({len(hits)} clips)")


if __name__ == "__main__":
    main()
