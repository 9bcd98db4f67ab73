"""The evaluation protocols by name, and the evaluation settings they make up.

    from vidssl.eval.protocols import PROTOCOLS
    PROTOCOLS["linear"].title     # the report's caption
    PROTOCOLS["knn"].columns      # the bench table's metrics

Adding a protocol is one file (a :class:`vidssl.eval.protocol_base.Protocol` subclass with
its settings dataclass) plus one line here; ``vidssl eval``, the report, the bench table and
the demo read names, titles and columns from :data:`PROTOCOLS`, and its settings fields join
:data:`EvalConfig` (``vidssl eval --config FILE key=value``).

:data:`EvalConfig` is the flat settings record a user writes: :class:`ClipSettings` (clips and
features), the settings of every feature / network protocol (in registry order, each class
once) and :class:`ArtefactSettings`; :func:`protocol_settings` cuts a protocol's own settings
out of it. Defaults follow the CSTP appendix ("Experimental Settings"): 10 uniformly spaced
clips per video, linear probe and fine-tune for 100 epochs at batch 60, lr 0.02, wd 5e-4.
Text protocols have their own settings (:class:`vidssl.eval.text_match.TextSettings`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import torch

from vidssl.config import ConfigError, dataclass_from_dict
from vidssl.eval.finetune import Finetune
from vidssl.eval.frozen import Knn, Linear, Retrieval
from vidssl.eval.protocol_base import ArtefactSettings, ClipSettings, Protocol
from vidssl.eval.temporal_order import TemporalOrder
from vidssl.eval.text_match import ClosedSet, TextSettings, ZeroShot

# name -> protocol; the order is the order of `vidssl eval all`, of the settings and of tables
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Retrieval(),
        Linear(),
        Knn(),
        Finetune(),
        ClosedSet(),
        ZeroShot(),
        TemporalOrder(),
    )
}


def names(*needs: str) -> tuple[str, ...]:
    """Protocol names, all of them or those whose ``needs`` is in ``needs``."""
    return tuple(n for n, p in PROTOCOLS.items() if not needs or p.needs in needs)


# what `vidssl eval all` runs: the protocols of a backbone checkpoint that say `in_all`
ALL: tuple[str, ...] = tuple(n for n in names("features", "network") if PROTOCOLS[n].in_all)


def _compose(name: str, parts: list[type]) -> type:
    """A dataclass with the fields of ``parts`` in order (each name once, first wins)."""
    fields: dict[str, tuple[str, Any, dataclasses.Field]] = {}
    for part in parts:
        hints = typing.get_type_hints(part)
        for f in dataclasses.fields(part):
            if f.name not in fields:
                copy = dataclasses.field(default=f.default, default_factory=f.default_factory)
                fields[f.name] = (f.name, hints[f.name], copy)
    doc = "Evaluation settings: " + ", ".join(p.__name__ for p in parts)
    return dataclasses.make_dataclass(name, list(fields.values()), namespace={"__doc__": doc})


_SETTINGS = [p.settings for p in PROTOCOLS.values() if p.needs != "text"]
# the settings a user writes: clips, then each protocol's own (registry order), then artefacts
EvalConfig: Any = _compose(
    "EvalConfig", [ClipSettings, *dict.fromkeys(_SETTINGS), ArtefactSettings]
)
EvalConfig.__module__ = __name__


def protocol_settings(protocol: str, cfg: Any) -> Any:
    """The settings dataclass of ``protocol`` filled from ``cfg`` (an EvalConfig or a
    TextSettings), field by field."""
    kind = PROTOCOLS[protocol].settings
    return kind(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(kind)})


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


def eval_config_from_dict(values: dict[str, Any], source: str = "eval") -> Any:
    """An :data:`EvalConfig` from ``{field: value}``, type- and range-checked.

    Raises :class:`ConfigError` naming ``source.field`` for an unknown field or a bad value.
    """
    cfg = dataclass_from_dict(EvalConfig, values, source)
    check_eval_config(cfg, source)
    return cfg


def check_eval_config(cfg: Any, source: str = "eval") -> None:
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


def text_settings_from_dict(values: dict[str, Any]) -> TextSettings:
    """Checked :class:`TextSettings`; :class:`ConfigError` names a bad field."""
    cfg = dataclass_from_dict(TextSettings, values, "eval")
    if cfg.num_clips < 1 or cfg.batch_size < 1 or cfg.workers < 0:
        raise ConfigError("eval", "num_clips and batch_size must be >= 1, workers >= 0")
    if cfg.num_crops not in (1, 3):
        raise ConfigError("eval.num_crops", f"must be 1 or 3, got {cfg.num_crops}")
    if not cfg.ks or min(cfg.ks) < 1:
        raise ConfigError("eval.ks", f"must list k >= 1, got {cfg.ks}")
    return cfg


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


def check_protocols(protocols: typing.Sequence[str], allowed: typing.Sequence[str]) -> list[str]:
    """Names in ``allowed``, de-duplicated in order; :class:`ConfigError` names a bad one."""
    if not protocols:
        raise ConfigError("protocol", f"no protocol given; choose from {list(allowed)}")
    for name in protocols:
        if name not in allowed:
            raise ConfigError(
                "protocol", f"unknown protocol {name!r}; choose from {list(allowed)} or all"
            )
    return list(dict.fromkeys(protocols))
