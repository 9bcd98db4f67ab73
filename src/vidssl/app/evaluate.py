"""Evaluation runs: a checkpoint (or a random init) -> protocols x splits x seeds x label sets.

    from vidssl.app.evaluate import EvalConfig, evaluate
    results = evaluate("runs/simclr/last.pt", protocols=("retrieval", "linear"),
                       dataset="ucf101", root="data/UCF-101", split="all", seeds=3,
                       out_dir="runs/simclr")

This is the application-level API behind ``vidssl eval`` (and ``vidssl bench`` / ``demo``).

Protocols (CSTP appendix, "Experimental Settings"):

- ``retrieval``: test videos query the training videos by cosine similarity of frozen
  video-level features; R@k (:mod:`vidssl.eval.retrieval`).
- ``linear``: a linear classifier on the cached frozen features; top-1 / top-5
  (:mod:`vidssl.eval.linear`).
- ``knn``: a cosine kNN classifier on the same features; top-1 / top-5.
- ``finetune``: the whole network with a new linear head (:class:`vidssl.methods.Supervised`)
  trained by the engine's ``Trainer`` (so ``torchrun`` DDP and resume work as for
  pre-training); testing averages the softmax over ``num_clips`` x ``num_crops`` views.

Video-level features are ``num_clips`` uniformly spaced clips (x crops) through the frozen
backbone, L2-normalised, averaged, L2-normalised (:mod:`vidssl.eval.features`), and cached
on disk in ``feats-<weights>-<settings hash>.pt`` so every frozen protocol (and a later
``vidssl eval`` with the same settings) reuses one extraction.

Splits and seeds: ``split`` is 1, 2, 3 or ``"all"`` (1-3); datasets with official splits
(UCF101, HMDB51) read them; the in-memory synthetic set has none, so its split ``k`` draws
the set with generator seed ``seed + k - 1`` (three independent train/test draws). Seed
``n`` seeds the random init (``checkpoint="random"``), the linear probe and the fine-tune.
Every (split, seed, label set) gives one :class:`vidssl.eval.EvalResult`; tables reduce them
to mean ± std.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vidssl import dist
from vidssl.app.eval_artefacts import save_artefacts, save_finetune_cam
from vidssl.app.eval_config import EvalConfig, check_eval_config, eval_config_from_dict
from vidssl.app.eval_data import (
    RANDOM,
    Context,
    SplitData,
    check_dataset_args,
    features,
    item_labels,
    labelled_keys,
    load_split,
    read_weights,
    resolve_clip,
    resolve_splits,
    split_args,
)
from vidssl.app.finetune import finetune
from vidssl.config import ConfigError
from vidssl.eval.features import Features
from vidssl.eval.linear import LinearProbeConfig, knn_classify, train_linear_probe
from vidssl.eval.retrieval import recall_at_k, recall_metric_names
from vidssl.eval.stats import EvalResult
from vidssl.models.backbones.base import Backbone

__all__ = [
    "FROZEN_PROTOCOLS",
    "PROTOCOL_NAMES",
    "RANDOM",
    "EvalConfig",
    "check_protocols",
    "eval_config_from_dict",
    "evaluate",
    "load_backbone",
    "result_file_name",
]

# protocol names accepted by evaluate(); "all" on the command line means all of them
PROTOCOL_NAMES: tuple[str, ...] = ("retrieval", "linear", "knn", "finetune")


def load_backbone(
    checkpoint: str,
    *,
    backbone: str | None = None,
    width: float | None = None,
    seed: int = 0,
) -> tuple[Backbone, str]:
    """A frozen-evaluation backbone and the key that identifies its weights.

    ``checkpoint`` is a vidssl checkpoint path (``last.pt`` of ``vidssl pretrain`` or
    ``vidssl train-supervised``; the backbone name and width are read from its saved config,
    ``backbone`` / ``width`` override them) or ``"random"`` (then ``backbone`` and ``width``
    are required and the weights are initialised with ``seed``).

    Returns ``(backbone, cache_key)``: the backbone in eval mode without classifier
    (``num_classes=0``), and ``cache_key`` = the hex sha256 of the checkpoint file, or
    ``f"random-{backbone}-{width}-{seed}"``. Raises ``FileNotFoundError`` naming a missing
    file and :class:`vidssl.config.ConfigError` (a ``ValueError``) for a file that is not a
    vidssl checkpoint or a bad backbone name / width.
    """
    weights = read_weights(checkpoint, backbone=backbone, width=width)
    return weights.build(seed), weights.key(seed)


# ---------------------------------------------------------------------------- frozen protocols

FrozenProtocol = Callable[[Features, Features, str, EvalConfig, int], tuple[dict[str, float], dict]]


def retrieval_metrics(
    train: Features, test: Features, key: str, cfg: EvalConfig, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """R@k with test videos as queries and training videos as the gallery (cosine)."""
    recalls = recall_at_k(test.feats, test.labels[key], train.feats, train.labels[key], cfg.ks)
    return recall_metric_names(recalls), {}


def linear_metrics(
    train: Features, test: Features, key: str, cfg: EvalConfig, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Linear probe top-1 / top-5 on the cached features (seeded init and batch order)."""
    probe = LinearProbeConfig(
        lr=cfg.linear_lr,
        weight_decay=cfg.linear_weight_decay,
        epochs=cfg.linear_epochs,
        batch_size=cfg.linear_batch_size,
        standardize=cfg.linear_standardize,
        seed=seed,
    )
    num_classes = int(max(train.labels[key].max(), test.labels[key].max())) + 1
    result = train_linear_probe(
        train.feats, train.labels[key], test.feats, test.labels[key], probe, num_classes
    )
    info = {"train_top1": result.train_top1, "final_loss": result.epoch_losses[-1]}
    return result.metrics(), {"linear": dataclasses.asdict(probe), **info}


def knn_metrics(
    train: Features, test: Features, key: str, cfg: EvalConfig, seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Cosine kNN classifier top-1 / top-5."""
    temperature = cfg.knn_temperature or None
    metrics = knn_classify(
        train.feats, train.labels[key], test.feats, test.labels[key], cfg.knn_k, temperature
    )
    return metrics, {"knn_k": cfg.knn_k, "knn_temperature": temperature}


FROZEN_PROTOCOLS: dict[str, FrozenProtocol] = {
    "retrieval": retrieval_metrics,
    "linear": linear_metrics,
    "knn": knn_metrics,
}


# ---------------------------------------------------------------------------- the run


def result_file_name(result: EvalResult, dataset: str) -> str:
    """``<protocol>-<dataset>-split<s>-seed<n>-<label set>.json``."""
    return (
        f"{result.protocol}-{dataset}-split{result.split}-seed{result.seed}-{result.label_set}.json"
    )


def check_protocols(protocols: Sequence[str]) -> list[str]:
    """Known protocol names, de-duplicated in order; :class:`ConfigError` names a bad one."""
    if not protocols:
        raise ConfigError("protocol", f"no protocol given; choose from {list(PROTOCOL_NAMES)}")
    for name in protocols:
        if name not in PROTOCOL_NAMES:
            raise ConfigError(
                "protocol", f"unknown protocol {name!r}; choose from {list(PROTOCOL_NAMES)} or all"
            )
    return list(dict.fromkeys(protocols))


def evaluate(
    checkpoint: str,
    *,
    protocols: Sequence[str] = ("retrieval", "linear"),
    dataset: str = "synthetic",
    root: str | None = None,
    dataset_args: dict[str, Any] | None = None,
    split: int | str = 1,
    seeds: int = 1,
    out_dir: str | Path | None = None,
    eval_cfg: EvalConfig | None = None,
    backbone: str | None = None,
    width: float | None = None,
    first_seed: int = 0,
    stream: str = "rgb",
    flow_root: str | None = None,
) -> list[EvalResult]:
    """Run ``protocols`` (names in :data:`PROTOCOL_NAMES`) and return one result per run.

    For every split (1, 2, 3, or all three for ``"all"``), seed (``first_seed`` ..
    ``first_seed + seeds - 1``) and label set of the dataset (the synthetic set has
    ``"motion"`` and ``"appearance"``, reported separately) each protocol gives one
    :class:`EvalResult`; tables over them show mean ± std. ``dataset`` is a name in ``vidssl.data.datasets.DATASETS``, ``root`` its
    folder, ``dataset_args`` further builder keywords (e.g. ``{"num_videos": 64}``).
    ``checkpoint`` / ``backbone`` / ``width`` as in :func:`load_backbone`. ``stream`` picks
    the stream of a two-stream (CVTCL) checkpoint: ``"rgb"``, ``"flow"`` or ``"both"``
    (features averaged); flow is read from ``flow_root`` (mirroring ``root``) or computed.

    With ``out_dir`` the results are written to ``out_dir/eval/<protocol>-<dataset>-split<s>-
    seed<n>-<label set>.json`` plus the report's artefacts (``retrieval_examples.pt``,
    ``embedding.pt``, ``cam_examples.pt``, from the first split and seed); features are
    cached in ``eval_cfg.cache_dir`` (default ``out_dir/eval/cache``). Bad input (unknown
    protocol / dataset, missing checkpoint or data folder) raises before any work:
    :class:`ConfigError` (a ``ValueError`` naming the argument), ``FileNotFoundError``.
    Under ``torchrun`` the fine-tune trains on every rank; everything else runs on rank 0.
    """
    cfg = eval_cfg or EvalConfig()
    check_eval_config(cfg)
    names = check_protocols(protocols)
    if seeds < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {seeds}")
    if first_seed < 0:
        raise ConfigError("first_seed", f"must be >= 0, got {first_seed}")
    splits = resolve_splits(split)
    args = dict(dataset_args or {})
    check_dataset_args(dataset, root, args)
    for s in splits:
        split_args(dataset, root, args, s)  # a split the dataset lacks fails here
    weights = read_weights(checkpoint, backbone=backbone, width=width, stream=stream)

    from vidssl.app.train.precision import guard_bf16_conv3d, resolve_amp

    info = dist.init_distributed("gloo" if cfg.device == "cpu" else None)  # no-op without torchrun
    device = torch.device("cpu") if cfg.device == "cpu" else info.device
    amp_dtype = resolve_amp(cfg.amp, device)
    if amp_dtype == torch.float16:  # feature extraction autocasts in bf16 only
        amp_dtype = torch.bfloat16
    eval_dir = Path(out_dir) / "eval" if out_dir is not None else None
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else (eval_dir / "cache" if eval_dir else None)
    ctx = Context(
        cfg,
        dataset,
        root,
        weights,
        resolve_clip(cfg, weights),
        device,
        amp_dtype,
        cache_dir,
        eval_dir,
        info,
        flow_root=flow_root,
    )
    results: list[EvalResult] = []
    for s in splits:
        data = load_split(dataset, root, args, s, cfg)
        for seed in range(first_seed, first_seed + seeds):
            model = weights.build(seed).to(device)
            if amp_dtype == torch.bfloat16 and device.type == "cpu":
                guard_bf16_conv3d(model)  # oneDNN bf16 conv3d defect, see precision.py
            first = s == splits[0] and seed == first_seed  # the report's artefacts come from here
            first = first and stream == "rgb"  # artefacts read RGB clips (no flow/both yet)
            frozen = [n for n in names if n in FROZEN_PROTOCOLS]
            if frozen and info.rank == 0:
                results += run_frozen(ctx, model, seed, data, frozen, artefacts=first)
            if "finetune" in names:
                cam = first and not frozen  # else the retrieval CAM is the report's figure
                results += run_finetune(ctx, model, seed, data, artefacts=cam)
    return results


def run_frozen(
    ctx: Context,
    model: Backbone,
    seed: int,
    data: SplitData,
    protocols: Sequence[str],
    artefacts: bool,
) -> list[EvalResult]:
    """The frozen-feature protocols on one split and seed, every labelled label set."""
    train_f = features(ctx, model, seed, data, "train")
    test_f = features(ctx, model, seed, data, "test")
    keys = labelled_keys(data)
    results = []
    for protocol in protocols:
        for key in keys:
            metrics, extra = FROZEN_PROTOCOLS[protocol](train_f, test_f, key, ctx.cfg, seed)
            results.append(_record(ctx, protocol, data, seed, key, metrics, extra))
    if artefacts and ctx.eval_dir is not None:
        save_artefacts(ctx, model, data, train_f, test_f, keys[0], "retrieval" in protocols)
    return results


def run_finetune(
    ctx: Context, model: Backbone, seed: int, data: SplitData, artefacts: bool
) -> list[EvalResult]:
    """Fine-tune (every rank under torchrun) and test (rank 0) for each labelled label set."""
    results = []
    for i, key in enumerate(labelled_keys(data)):
        metrics, extra, trained = finetune(ctx, model, seed, data, key)
        if ctx.dist_info.rank == 0:
            results.append(_record(ctx, "finetune", data, seed, key, metrics, extra))
            if artefacts and i == 0 and ctx.eval_dir is not None:
                save_finetune_cam(ctx, trained, data, key, item_labels(data.test, key))
        dist.barrier()
    return results


def _record(
    ctx: Context,
    protocol: str,
    data: SplitData,
    seed: int,
    key: str,
    metrics: dict[str, float],
    extra: dict[str, Any],
) -> EvalResult:
    """One result, saved in ``eval_dir`` when there is one."""
    result = EvalResult(
        protocol=protocol,
        split=str(data.split),
        metrics={k: float(v) for k, v in metrics.items()},
        seed=seed,
        label_set=data.label_sets[key],
        info={**ctx.info(data), **extra},
    )
    if ctx.eval_dir is not None:
        result.save(ctx.eval_dir / result_file_name(result, ctx.dataset))
    if not all(math.isfinite(v) for v in result.metrics.values()):
        print(f"warning: non-finite metric in {protocol} {result.label_set}", file=sys.stderr)
    return result
