"""``vidssl pretrain``: self-supervised pre-training from a config file and overrides.

    vidssl pretrain --config configs/simclr.yaml train.out_dir=runs/simclr optim.lr=0.1
    vidssl pretrain --config configs/simclr.yaml --resume auto        # continue runs/.../last.pt
    torchrun --nproc_per_node 2 -m vidssl pretrain --config configs/simclr.yaml

Exit codes: 0 done, 1 training stopped (non-finite loss, unreadable checkpoint, data error),
2 bad configuration (reported before any work, naming the field).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidssl.app.eval import allow_trailing_overrides
from vidssl.config import Config, ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=None, help="YAML config (default: built-in synthetic CPU run)"
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CKPT",
        help="checkpoint to continue from, or 'auto' for OUT_DIR/last.pt (same as train.resume=...)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="SECTION.FIELD=VALUE",
        help="config overrides, e.g. optim.lr=0.1 data.batch_size=8 method.temperature=0.2",
    )
    allow_trailing_overrides(parser)  # overrides may also follow --resume / --config


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"train.resume={args.resume}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"vidssl pretrain: config error: {err}", file=sys.stderr)
        return 2

    return train(cfg, "pretrain")


def train(cfg: Config, command: str) -> int:
    """Build and fit ``cfg`` (resuming as it says); the exit code of ``vidssl <command>``."""
    from vidssl import dist
    from vidssl.app.train.build import build_trainer
    from vidssl.app.train.checkpoint import CHECKPOINT_NAME, CheckpointError
    from vidssl.app.train.loop import NonFiniteLossError

    info = dist.init_distributed("gloo" if cfg.train.device == "cpu" else None)
    try:
        trainer = build_trainer(cfg, info)
        resume = cfg.train.resume
        if resume == "auto":
            last = Path(cfg.train.out_dir) / CHECKPOINT_NAME
            resume = str(last) if last.is_file() else ""
            if not resume and info.rank == 0:
                print(f"vidssl {command}: no {last} yet, starting from scratch", file=sys.stderr)
        if resume:
            trainer.resume(resume)
        trainer.fit()
    except ConfigError as err:
        print(f"vidssl {command}: config error: {err}", file=sys.stderr)
        return 2
    except (NonFiniteLossError, CheckpointError) as err:
        print(f"vidssl {command}: stopped: {err}", file=sys.stderr)
        return 1
    finally:
        dist.cleanup()
    if info.rank == 0:
        print(f"vidssl {command}: done, checkpoint {Path(cfg.train.out_dir) / CHECKPOINT_NAME}")
    return 0
