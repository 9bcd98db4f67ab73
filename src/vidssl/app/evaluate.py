"""Evaluation runs: a checkpoint (or a random init) -> protocols x splits x seeds x label sets.

    from vidssl.app.evaluate import EvalConfig, evaluate
    results = evaluate("runs/simclr/last.pt", protocols=("retrieval", "linear"),
                       dataset="ucf101", root="data/UCF-101", split="all", seeds=3,
                       out_dir="runs/simclr")

This is the application-level API behind ``vidssl eval`` (and ``vidssl bench`` / ``demo``):
it reads the weights, builds each split, and runs the protocols of
:data:`vidssl.eval.protocols.PROTOCOLS` on a :class:`vidssl.eval.context.Job` (frozen
features cached once for every frozen protocol, :mod:`vidssl.eval.context`); the fine-tune's
training is the engine's ``Trainer`` (:mod:`vidssl.app.finetune`), so ``torchrun`` DDP and
resume work as for pre-training.

Splits and seeds: ``split`` is 1, 2, 3 or ``"all"`` (1-3; :mod:`vidssl.eval.splits`). Seed
``n`` seeds the random init (``checkpoint="random"``), the linear probe and the fine-tune.
Every (split, seed, label set) gives one :class:`vidssl.eval.EvalResult`; tables reduce them
to mean ± std.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidssl import dist
from vidssl.app import zeroshot
from vidssl.app.finetune import train_network
from vidssl.config import ConfigError
from vidssl.eval.artefacts import save_artefacts
from vidssl.eval.context import Context, Job, resolve_clip
from vidssl.eval.protocols import (
    PROTOCOLS,
    EvalConfig,
    check_eval_config,
    eval_config_from_dict,
    names,
)
from vidssl.eval.protocols import check_protocols as check_all_protocols
from vidssl.eval.run import run_protocol
from vidssl.eval.splits import (
    check_dataset_args,
    load_split,
    resolve_splits,
    split_args,
)
from vidssl.eval.stats import EvalResult
from vidssl.eval.text_match import TextSettings
from vidssl.eval.weights import RANDOM, Weights, read_weights

__all__ = ["RANDOM", "EvalConfig", "check_protocols", "eval_config_from_dict", "evaluate"]


# ---------------------------------------------------------------------------- the run


def check_protocols(protocols: Sequence[str]) -> list[str]:
    """Known feature / network protocol names (those that run on a backbone), de-duplicated in
    order; :class:`ConfigError` names a bad one."""
    return check_all_protocols(protocols, names("features", "network"))


def evaluate(
    checkpoint: str | Weights,
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
    text_cfg: TextSettings | None = None,
) -> list[EvalResult]:
    """Run ``protocols`` (names of :data:`vidssl.eval.protocols.PROTOCOLS`) and return one result per run: the one evaluation driver.

    Each protocol runs on the job its ``needs`` asks for. Feature and network protocols
    (``retrieval``, ``linear``, ``finetune``, ...) run on the checkpoint's backbone
    (:func:`run_backbone_protocols`): for every split (1, 2, 3, or all three for ``"all"``),
    seed (``first_seed`` .. ``first_seed + seeds - 1``) and label set of the dataset (the
    synthetic set has ``"motion"`` and ``"appearance"``, reported separately) each gives one
    :class:`EvalResult`; tables over them show mean ± std. ``dataset`` is a name in
    ``vidssl.data.datasets.DATASETS``, ``root`` its folder, ``dataset_args`` further builder
    keywords (e.g. ``{"num_videos": 64}``). ``checkpoint`` / ``backbone`` / ``width`` as in
    :func:`vidssl.eval.weights.read_weights`, or ``checkpoint`` read already (a
    :class:`vidssl.eval.weights.Weights`, e.g. one stream of a two-stream checkpoint:
    ``read_weights(path, stream="flow")``); the clips given to the backbone are those its
    ``modalities`` name.

    Text protocols (``closed-set``, ``zeroshot``) run on the trained language-video method of
    the ``checkpoint`` file, on its own training dataset (``dataset_args`` override its
    builder arguments), with ``text_cfg``: one result each
    (:func:`vidssl.app.zeroshot.evaluate_text`), written to ``out_dir/eval/<protocol>-
    <dataset>-<label set>.json``.

    With ``out_dir`` the results are written to ``out_dir/eval/<protocol>-<dataset>-split<s>-
    seed<n>-<label set>.json`` plus the report's artefacts (``retrieval_examples.pt``,
    ``embedding.pt``, ``cam_examples.pt``, from the first split and seed); features are
    cached in ``eval_cfg.cache_dir`` (default ``out_dir/eval/cache``). Bad input (unknown
    protocol / dataset, missing checkpoint or data folder) raises before any work:
    :class:`ConfigError` (a ``ValueError`` naming the argument), ``FileNotFoundError``.
    Under ``torchrun`` the fine-tune trains on every rank; everything else runs on rank 0.
    """
    names_ = check_all_protocols(protocols, names())
    text = [n for n in names_ if PROTOCOLS[n].needs == "text"]
    backbone_protocols = [n for n in names_ if n not in text]
    if text and isinstance(checkpoint, Weights):
        raise ConfigError(
            "--checkpoint", "text protocols read a method checkpoint file, not backbone weights"
        )
    results: list[EvalResult] = []
    if backbone_protocols:
        results += run_backbone_protocols(
            checkpoint,
            backbone_protocols,
            dataset=dataset,
            root=root,
            dataset_args=dataset_args,
            split=split,
            seeds=seeds,
            out_dir=out_dir,
            eval_cfg=eval_cfg,
            backbone=backbone,
            width=width,
            first_seed=first_seed,
        )
    for name in text:
        result = zeroshot.evaluate_text(str(checkpoint), name, text_cfg, dataset_args)
        if out_dir is not None:
            zeroshot.save_text_result(result, name, Path(out_dir))
        results.append(result)
    return results


def run_backbone_protocols(
    checkpoint: str | Weights,
    protocols: Sequence[str],
    *,
    dataset: str,
    root: str | None,
    dataset_args: dict[str, Any] | None,
    split: int | str,
    seeds: int,
    out_dir: str | Path | None,
    eval_cfg: EvalConfig | None,
    backbone: str | None,
    width: float | None,
    first_seed: int,
) -> list[EvalResult]:
    """The feature and network protocols of :func:`evaluate` on the checkpoint's backbone."""
    cfg = eval_cfg or EvalConfig()
    check_eval_config(cfg)
    names_ = check_protocols(protocols)
    frozen = [n for n in names_ if PROTOCOLS[n].needs == "features"]
    if seeds < 1:
        raise ConfigError("--seeds", f"must be >= 1, got {seeds}")
    if first_seed < 0:
        raise ConfigError("first_seed", f"must be >= 0, got {first_seed}")
    splits = resolve_splits(split)
    args = dict(dataset_args or {})
    check_dataset_args(dataset, root, args)
    for s in splits:
        split_args(dataset, root, args, s)  # a split the dataset lacks fails here
    weights = (
        checkpoint
        if isinstance(checkpoint, Weights)
        else read_weights(checkpoint, backbone=backbone, width=width)
    )

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
    )
    results: list[EvalResult] = []
    for s in splits:
        data = load_split(dataset, root, args, s, cfg)
        for seed in range(first_seed, first_seed + seeds):
            model = weights.build(seed).to(device)
            if amp_dtype == torch.bfloat16 and device.type == "cpu":
                guard_bf16_conv3d(model)  # oneDNN bf16 conv3d defect, see precision.py
            first = s == splits[0] and seed == first_seed  # the report's artefacts come from here
            first = first and model.modalities == ("rgb",)  # artefacts read RGB clips
            job = Job(ctx, model, seed, data, train_network)
            for name in frozen:
                results += run_protocol(job, name)
            if frozen and first and info.rank == 0 and ctx.eval_dir is not None:
                train_f, test_f = job.features("train"), job.features("test")
                keys = job.label_keys
                save_artefacts(ctx, model, data, train_f, test_f, keys[0], "retrieval" in names_)
            for name in names_:
                if name not in frozen:  # the CAM of a fine-tune when no retrieval CAM was saved
                    results += run_protocol(job, name, cam=first and not frozen)
    return results
