"""Settings of an evaluation run (``vidssl eval --config FILE key=value``).

Defaults follow the CSTP appendix ("Experimental Settings"): 10 uniformly spaced clips per
video, linear probe and fine-tune for 100 epochs at batch 60, lr 0.02, weight decay 5e-4.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from vidssl.config import ConfigError, check_type


@dataclass
class EvalConfig:
    """Evaluation settings (``vidssl eval --config FILE key=value``)."""

    # ---- clips and features (CSTP appendix, "Video Retrieval Settings")
    num_clips: int = 10  # clips uniformly spaced in time per video (10 in CSTP / Xu et al.)
    num_crops: int = 1  # 1 = centre crop; 3 = three crops along the long side (x3 test views)
    clip_len: int = 0  # frames per clip T; 0 = the checkpoint's data.clip_len (else 8)
    stride: float = 0.0  # source frames per clip frame; 0 = the checkpoint's data.stride (else 2)
    size: int = 0  # crop side in pixels; 0 = the checkpoint's data.size (else 32)
    clip_norm: bool = True  # L2-normalise each clip feature before averaging the K clips
    batch_size: int = 8  # videos per batch for feature extraction and multi-clip testing
    workers: int = 2  # DataLoader worker processes (0 = load in the main process)
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # autocast (auto: bf16 on CPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    cache_dir: str = ""  # feature cache folder; "" = OUT/eval/cache (no disk cache without OUT)
    train_subset: str = "train"  # subset of the dataset used as gallery / training set
    test_subset: str = "test"  # subset used as queries / test set
    ks: tuple[int, ...] = (1, 5, 10, 20, 50)  # retrieval R@k
    # ---- linear probe on cached features (CSTP appendix: 100 epochs, batch 60, lr 0.02, wd 5e-4)
    linear_lr: float = 0.02  # SGD learning rate (cosine to 0)
    linear_weight_decay: float = 5e-4  # SGD weight decay
    linear_epochs: int = 100  # passes over the training features
    linear_batch_size: int = 60  # features per SGD step
    linear_standardize: bool = True  # standardise features with the train split's mean / std
    # ---- kNN classifier on cached features
    knn_k: int = 20  # neighbours that vote
    knn_temperature: float = 0.0  # 0 = one vote each; > 0 = votes weighted exp(sim / T)
    # ---- end-to-end fine-tuning through the engine's Trainer (CSTP appendix "Supervised
    # Fine-tuning Stage": 100 epochs, batch 60, lr 0.02, wd 5e-4; 10-clip softmax averaging).
    # Departure: the paper decays the lr x0.1 on loss plateaus; the engine's schedule is cosine.
    finetune_epochs: int = 100  # passes over the training split
    finetune_max_steps: int = 0  # > 0: optimiser steps instead of epochs
    finetune_batch_size: int = 60  # clips per micro-batch per process (capped at the set size)
    finetune_optim: Literal["sgd", "adam", "adamw", "lars"] = "sgd"  # optimiser
    finetune_lr: float = 0.02  # peak learning rate
    finetune_weight_decay: float = 5e-4  # weight decay on conv / linear weights
    finetune_warmup_epochs: float = 0.0  # linear warmup length in epochs
    finetune_dropout: float = 0.0  # dropout before the new linear head
    finetune_resume: bool = True  # continue an unfinished fine-tune from its last.pt
    # further "clip" recipe arguments for the training clips, e.g. {jitter_strength: 0.5}
    finetune_recipe: dict[str, Any] = field(default_factory=dict)
    # ---- artefacts for `vidssl report`
    num_examples: int = 4  # retrieval query rows and Grad-CAM clips saved in OUT/eval/
    example_frames: int = 4  # frames shown per clip in those figures
    progress: bool = True  # tqdm progress bars


# field -> smallest allowed value (inclusive); num_crops is checked by the recipe (1 or 3)
EVAL_MINIMA: dict[str, float] = {
    "num_clips": 1,
    "clip_len": 0,
    "stride": 0.0,
    "size": 0,
    "batch_size": 1,
    "workers": 0,
    "linear_lr": 1e-12,
    "linear_weight_decay": 0.0,
    "linear_epochs": 1,
    "linear_batch_size": 1,
    "knn_k": 1,
    "knn_temperature": 0.0,
    "finetune_epochs": 1,
    "finetune_max_steps": 0,
    "finetune_batch_size": 1,
    "finetune_lr": 0.0,
    "finetune_weight_decay": 0.0,
    "finetune_warmup_epochs": 0.0,
    "finetune_dropout": 0.0,
    "num_examples": 0,
    "example_frames": 1,
}


def eval_config_from_dict(values: dict[str, Any], source: str = "eval") -> EvalConfig:
    """An :class:`EvalConfig` from ``{field: value}``, type- and range-checked.

    Raises :class:`ConfigError` naming ``source.field`` for an unknown field or a bad value.
    """
    hints = typing.get_type_hints(EvalConfig)
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    checked = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{source}.{name}", f"unknown field; expected one of {sorted(known)}")
        checked[name] = check_type(value, hints[name], f"{source}.{name}")
    cfg = EvalConfig(**checked)
    check_eval_config(cfg, source)
    return cfg


def check_eval_config(cfg: EvalConfig, source: str = "eval") -> None:
    """Range checks; :class:`ConfigError` names the field."""
    for name, minimum in EVAL_MINIMA.items():
        if getattr(cfg, name) < minimum:
            raise ConfigError(
                f"{source}.{name}", f"must be >= {minimum:g}, got {getattr(cfg, name)}"
            )
    if cfg.num_crops not in (1, 3):
        raise ConfigError(f"{source}.num_crops", f"must be 1 or 3, got {cfg.num_crops}")
    if cfg.finetune_dropout >= 1.0:
        raise ConfigError(f"{source}.finetune_dropout", f"must be < 1, got {cfg.finetune_dropout}")
    if not cfg.ks or min(cfg.ks) < 1:
        raise ConfigError(f"{source}.ks", f"must list k >= 1, got {cfg.ks}")
    _check_recipe_args(cfg.finetune_recipe, f"{source}.finetune_recipe")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source}.device", "CUDA was requested but is not available")


def _check_recipe_args(args: dict[str, Any], source: str) -> None:
    """Names of ``"clip"`` recipe arguments; clip_len / stride / size / train are set by eval."""
    from vidssl.data.recipes import RECIPES

    owned = {"clip_len", "stride", "size", "train"}
    allowed = {f.name for f in dataclasses.fields(RECIPES["clip"]) if f.init} - owned
    for name in args:
        if name not in allowed:
            raise ConfigError(
                f"{source}.{name}", f"not a clip recipe argument; expected one of {sorted(allowed)}"
            )
