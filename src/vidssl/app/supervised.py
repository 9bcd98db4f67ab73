"""``vidssl train-supervised``: supervised training from scratch, the ceiling of every table.

    vidssl train-supervised --config configs/eval/supervised_ucf101.yaml train.out_dir=runs/sup
    vidssl train-supervised data.dataset=synthetic train.max_steps=200
    vidssl eval all --checkpoint runs/supervised/last.pt --data synthetic

The same config file, overrides, engine (``Trainer``: DDP under ``torchrun``, resume,
checkpoints) as ``vidssl pretrain``, with the method fixed to ``supervised``
(:class:`vidssl.methods.supervised.Supervised`: randomly initialised backbone + linear head,
cross-entropy on one clip per video). ``method.num_classes`` defaults to the number of
classes of the training data; ``method.label_key=appearance`` trains on the synthetic set's
appearance labels. The checkpoint's ``backbone.`` weights are evaluated by ``vidssl eval``
like any pre-trained checkpoint. ``train.out_dir`` defaults to ``runs/supervised``.

Exit codes as ``vidssl pretrain``: 0 done, 1 training stopped, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vidssl.app.eval import allow_trailing_overrides
from vidssl.config import Config, ConfigError, TrainConfig, load_config

METHOD = "supervised"
DEFAULT_OUT_DIR = "runs/supervised"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, help="YAML config (default: built-in synthetic CPU run)"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CKPT",
        help="checkpoint to continue from, or 'auto' for OUT_DIR/last.pt",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="SECTION.FIELD=VALUE",
        help="config overrides, e.g. data.dataset=ucf101 data.root=DIR optim.lr=0.1",
    )
    allow_trailing_overrides(parser)


def count_classes(cfg: Config) -> int:
    """Classes of the training data for ``method.label_key`` (the class list, or max label + 1)."""
    from vidssl.data.datasets import open_split

    d = cfg.data
    index = open_split(d.dataset, d.root, d.subset, d.args).index
    key = cfg.method.hparams.get("label_key", "label")
    if key == "label":
        labels = [item.label for item in index.items]
        known = len(index.classes)
    else:
        if any(key not in item.extra for item in index.items):
            raise ConfigError(
                "method.label_key", f"dataset {cfg.data.dataset!r} has no label set {key!r}"
            )
        labels = [item.extra[key] for item in index.items]
        known = 0
    if not labels or max(labels) < 0:
        raise ConfigError("data.dataset", f"{cfg.data.dataset!r} is unlabelled")
    return max(known, max(labels) + 1)


def run(args: argparse.Namespace) -> int:
    overrides = [f"method.name={METHOD}", *args.overrides]
    if args.resume:
        overrides.append(f"train.resume={args.resume}")
    try:
        cfg = load_config(args.config, overrides)
        if cfg.method.name != METHOD:
            raise ConfigError("method.name", f"train-supervised trains {METHOD!r} only")
        if cfg.train.out_dir == TrainConfig.out_dir:  # the pre-training default
            cfg.train.out_dir = DEFAULT_OUT_DIR
        if not cfg.method.hparams.get("num_classes"):
            cfg.method.hparams["num_classes"] = count_classes(cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"vidssl train-supervised: config error: {err}", file=sys.stderr)
        return 2

    from vidssl.app.pretrain import train
    from vidssl.app.train.checkpoint import CHECKPOINT_NAME

    code = train(cfg, "train-supervised")
    if code == 0 and os.environ.get("RANK", "0") == "0":
        ckpt = Path(cfg.train.out_dir) / CHECKPOINT_NAME
        print(f"evaluate it with: vidssl eval all --checkpoint {ckpt} --data {cfg.data.dataset}")
    return code
