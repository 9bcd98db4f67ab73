"""Typed run configuration: dataclasses with defaults, YAML files, ``key=value`` overrides.

Precedence: built-in defaults <- YAML file <- ``section.field=value`` overrides (values parsed
as YAML scalars, e.g. ``optim.lr=0.1``, ``train.amp=none``, ``data.root=/videos``). Every value
is type-checked against its field's annotation and every name (method, backbone, dataset) is
looked up in its registry before any work starts; a bad value raises :class:`ConfigError`
whose message names the field (``optim.lr: expected float, got 'fast' (str)``).

Method hyper-parameters are the keyword arguments of the chosen method's ``__init__``
(``method.temperature=0.2``); they are checked against its signature with ``inspect``
(names and annotated types). The resolved config (method defaults filled in) is what
``config.yaml`` in the run folder records.

Without a file the defaults describe a CPU-sized run on the built-in synthetic set.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad configuration value. ``field`` is the dotted key, e.g. ``"optim.lr"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # name in vidssl.data.datasets.DATASETS
    root: str = ""  # data folder, the builder's `root` ("" = none; synthetic: in memory)
    subset: str = ""  # subset the builder reads (train / test / ...); "" = its default (train)
    # further builder keyword arguments, checked against its signature: ucf101 / hmdb51
    # {splits_dir, split}, kinetics {csv_path}, synthetic {num_videos, frames, size, ...}
    args: dict[str, Any] = field(default_factory=dict)
    clip_len: int = 8  # frames per clip T
    stride: float = 2.0  # source frames per clip frame (temporal stride; may be fractional)
    size: int = 32  # crop side in pixels (clips are size x size)
    # further recipe keyword arguments, checked against the recipe's fields, e.g.
    # {jitter_strength: 0.5, p_blur: 0.5, c_ratio: 1.0}; these win over the method's overrides
    recipe: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8  # samples per micro-batch PER PROCESS (global = x world size)
    workers: int = 2  # DataLoader worker processes (0 = load in the main process)


@dataclass
class ModelConfig:
    backbone: str = "r3d_18"  # name in vidssl.models.backbones.BACKBONES
    width: float = 0.25  # channel width multiplier (1.0 = the published network)
    sync_bn: bool = False  # SyncBatchNorm across processes under DDP (no effect with one)
    # further keyword arguments of the backbone factory, e.g. vit_clip's {arch: tiny,
    # num_frames: 8, temporal: tws} or an attention R(2+1)D's {num_frames: 16}
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodConfig:
    name: str = "simclr"  # name in vidssl.methods.METHODS
    # keyword hyper-parameters of the method's __init__; written flat in YAML next to `name`
    # (method.temperature=0.2); unknown or ill-typed names are rejected with the field name
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam", "adamw", "lars"] = "sgd"  # optimiser (vidssl.app.train.optim)
    lr: float = 0.05  # peak learning rate, reached after warmup (no automatic batch scaling)
    min_lr: float = 0.0  # learning rate at the end of the cosine decay
    momentum: float = 0.9  # SGD / LARS momentum; Adam beta1
    weight_decay: float = 1e-4  # applied to conv / linear weights only, never to norms / biases
    lars_eta: float = 0.001  # LARS trust coefficient (You et al. 2017)
    warmup_epochs: float = 1.0  # linear warmup length in epochs (per-step schedule)
    grad_clip: float = 0.0  # max global gradient L2 norm; 0 disables clipping
    accumulate: int = 1  # micro-batches per optimiser step (gradient accumulation)


@dataclass
class TrainConfig:
    epochs: int = 10  # passes over the data (ignored when max_steps > 0)
    max_steps: int = 0  # optimiser steps to run; > 0 overrides epochs (schedule spans it)
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # auto: bf16 on CPU, bf16/fp16 on GPU
    channels_last: bool = True  # channels_last_3d memory format for the model and 5-D inputs
    compile: bool = False  # torch.compile the training step (adds little on CPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    seed: int = 0  # seeds model init, data order (seed, epoch) and augmentation
    out_dir: str = "runs/pretrain"  # checkpoints, config.yaml, metrics.jsonl, tb/ go here
    log_every: int = 10  # optimiser steps between metrics.jsonl / TensorBoard records
    ckpt_every: int = 100  # optimiser steps between checkpoints (last.pt)
    resume: str = ""  # "" = fresh run, "auto" = out_dir/last.pt if present, or a .pt path
    # torch intra-op threads of the training process; 0 = auto: $OMP_NUM_THREADS if set, else
    # the CPU cores minus data.workers, at least 1 (vidssl.app.train.threads)
    threads: int = 0


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "method": MethodConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}

# field -> smallest allowed value (inclusive)
MINIMA: dict[str, float] = {
    "data.clip_len": 1,
    "data.stride": 1e-9,
    "data.size": 1,
    "data.batch_size": 1,
    "data.workers": 0,
    "model.width": 1e-9,
    "optim.lr": 0.0,
    "optim.min_lr": 0.0,
    "optim.momentum": 0.0,
    "optim.weight_decay": 0.0,
    "optim.lars_eta": 0.0,
    "optim.warmup_epochs": 0.0,
    "optim.grad_clip": 0.0,
    "optim.accumulate": 1,
    "train.epochs": 1,
    "train.max_steps": 0,
    "train.log_every": 1,
    "train.ckpt_every": 1,
    "train.threads": 0,
}


# ---------------------------------------------------------------------------------------------
# type checking


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def check_type(value: Any, hint: Any, key: str) -> Any:
    """``value`` if it fits the annotation ``hint`` (ints widen to float, lists to tuples).

    A string that parses as a number is accepted for a float field (PyYAML reads ``1e-3``
    as a string). Raises :class:`ConfigError` naming ``key`` otherwise.
    """
    ok, out = _fit(value, hint)
    if not ok:
        raise ConfigError(
            key, f"expected {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        )
    return out


def _fit(value: Any, hint: Any) -> tuple[bool, Any]:
    if hint is Any or hint is inspect.Parameter.empty:
        return True, value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, out = _fit(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return _fit_float(value)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return _fit_sequence(value, origin or hint, args)
    if origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, value
        sub = args[1] if len(args) == 2 else Any
        fitted = {k: _fit(v, sub) for k, v in value.items()}
        return all(ok for ok, _ in fitted.values()), {k: v for k, (_, v) in fitted.items()}
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value  # annotations we do not model (callables, protocols): accept


def _fit_float(value: Any) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return False, value
    if isinstance(value, int | float):
        return True, float(value)
    if isinstance(value, str):
        try:
            return True, float(value)
        except ValueError:
            return False, value
    return False, value


def _fit_sequence(value: Any, kind: Any, args: tuple[Any, ...]) -> tuple[bool, Any]:
    if not isinstance(value, list | tuple):
        return False, value
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            return False, value
        hints: list[Any] = list(args)
    else:
        hints = [args[0] if args else Any] * len(value)
    fitted = [_fit(v, h) for v, h in zip(value, hints)]
    items = [v for _, v in fitted]
    return all(ok for ok, _ in fitted), tuple(items) if kind is tuple else items


# ---------------------------------------------------------------------------------------------
# building and validation


def keyword_params(fn: Any, skip: int = 0) -> dict[str, inspect.Parameter]:
    """Keyword-passable parameters of ``fn`` after the first ``skip`` ones."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: p for p in params if p.kind in kinds}


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except (NameError, TypeError):  # an annotation we cannot resolve: check names only
        return {}


def _check_kwargs(
    values: dict[str, Any], params: dict[str, Any], hints: dict[str, Any], prefix: str, owner: str
) -> None:
    """Names in ``params`` and values of the annotated types (in place, coerced)."""
    for name, value in list(values.items()):
        if name not in params:
            raise ConfigError(
                f"{prefix}.{name}",
                f"unknown argument for {owner}; expected one of {sorted(params)}",
            )
        values[name] = check_type(value, hints.get(name, Any), f"{prefix}.{name}")


def _default(p: inspect.Parameter) -> Any:
    return list(p.default) if isinstance(p.default, tuple) else p.default


def _check_method(section: MethodConfig) -> type:
    from vidssl.methods import METHODS

    cls = _lookup(METHODS, section.name, "method.name", "method")
    params = keyword_params(cls.__init__, skip=2)  # self, backbone
    _check_kwargs(
        section.hparams, params, _hints(cls.__init__), "method", f"method {section.name!r}"
    )
    for name, p in params.items():  # resolved config: record the method's own defaults
        if name not in section.hparams and p.default is not inspect.Parameter.empty:
            section.hparams[name] = _default(p)
    return cls


_PATH_SUFFIXES = ("_dir", "_path", "_file")


def _check_dataset(data: DataConfig) -> None:
    from vidssl.data.datasets import DatasetArgError, dataset_hints, dataset_params

    try:
        params = dataset_params(data.dataset)
    except DatasetArgError as err:  # an unknown dataset
        raise ConfigError("data.dataset", err.message) from err
    owned = {"root", "subset"} & set(params)  # filled from data.root / data.subset
    args = {k: v for k, v in params.items() if k not in owned}
    _check_kwargs(
        data.args, args, dataset_hints(data.dataset), "data.args", f"dataset {data.dataset!r}"
    )
    if "root" in params and params["root"].default is inspect.Parameter.empty and not data.root:
        raise ConfigError("data.root", f"dataset {data.dataset!r} needs a data folder")
    if data.root and not Path(data.root).exists():
        raise ConfigError("data.root", f"path does not exist: {data.root}")
    if not data.subset and "subset" in params and isinstance(params["subset"].default, str):
        data.subset = params["subset"].default  # resolved config
    for name, p in args.items():
        if name not in data.args and p.default is inspect.Parameter.empty:
            raise ConfigError(f"data.args.{name}", f"required by dataset {data.dataset!r}")
        if name not in data.args:
            data.args[name] = _default(p)  # resolved config
        value = data.args[name]
        if name.endswith(_PATH_SUFFIXES) and isinstance(value, str) and not Path(value).exists():
            raise ConfigError(f"data.args.{name}", f"path does not exist: {value}")


def _check_recipe(data: DataConfig, recipe_name: str) -> None:
    from vidssl.data.recipes import RECIPES

    cls = _lookup(RECIPES, recipe_name, "method.name", "recipe (of this method)")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in ("clip_len", "stride", "size", "train"):
        if name in data.recipe:
            raise ConfigError(
                f"data.recipe.{name}",
                f"set it as data.{name}" if name != "train" else "fixed by the engine",
            )
        fields.pop(name)
    _check_kwargs(data.recipe, fields, _hints(cls), "data.recipe", f"recipe {recipe_name!r}")


def _lookup(registry: dict[str, Any], name: str, key: str, what: str) -> Any:
    if name not in registry:
        raise ConfigError(key, f"unknown {what} {name!r}; choose from {sorted(registry)}")
    return registry[name]


def _build_section(cls: type, raw: dict[str, Any], section: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(section, f"expected a mapping of fields, got {type(raw).__name__}")
    raw = dict(raw)
    if cls is MethodConfig:
        name = raw.pop("name", MethodConfig.name)
        if not isinstance(name, str):
            raise ConfigError("method.name", f"expected str, got {name!r}")
        hparams = raw.pop("hparams", {})
        return MethodConfig(name=name, hparams={**hparams, **raw})
    return dataclass_from_dict(cls, raw, section)


def dataclass_from_dict(cls: type, raw: dict[str, Any], section: str) -> Any:
    """``cls(**raw)`` with every field type-checked; :class:`ConfigError` names
    ``section.field`` for an unknown or ill-typed one."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{section}.{key}", f"unknown field; expected one of {sorted(known)}")
        values[key] = check_type(value, hints[key], f"{section}.{key}")
    return cls(**values)


def _check_ranges(cfg: Config) -> None:
    for key, minimum in MINIMA.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value < minimum:
            raise ConfigError(key, f"must be >= {minimum:g}, got {value!r}")


def _check_model_and_resume(cfg: Config) -> None:
    from vidssl.models.backbones import BACKBONES

    factory = _lookup(BACKBONES, cfg.model.backbone, "model.backbone", "backbone")
    params = keyword_params(factory)
    takes_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(factory).parameters.values()
    )
    if not takes_any:  # a lazy wrapper taking **kw is checked when it builds
        owned = {"num_classes", "width"}
        args = {k: v for k, v in params.items() if k not in owned}
        _check_kwargs(
            cfg.model.args, args, _hints(factory), "model.args", f"backbone {cfg.model.backbone!r}"
        )
    resume = cfg.train.resume
    if resume not in ("", "auto") and not Path(resume).is_file():
        raise ConfigError("train.resume", f"checkpoint file not found: {resume}")


def _check_device(cfg: Config) -> None:
    import torch

    cuda = torch.cuda.is_available()
    if cfg.train.device == "cuda" and not cuda:
        raise ConfigError("train.device", "CUDA was requested but is not available")
    on_gpu = cfg.train.device == "cuda" or (cfg.train.device == "auto" and cuda)
    if cfg.train.amp == "fp16" and not on_gpu:
        raise ConfigError("train.amp", "fp16 needs a CUDA device; use bf16 (or auto) on CPU")


def validate(cfg: Config) -> Config:
    """Check ranges, registry names, paths and method hyper-parameters (fills method defaults)."""
    _check_ranges(cfg)
    method_cls = _check_method(cfg.method)
    _check_model_and_resume(cfg)
    _check_dataset(cfg.data)
    _check_recipe(cfg.data, method_cls.recipe)
    _check_device(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# YAML and overrides


def _read_yaml(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("--config", f"file not found: {path}")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("--config", f"{path} is not valid YAML: {err}") from err
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            "--config", f"{path} must hold a mapping of sections, got {type(raw).__name__}"
        )
    return raw


def _merge(base: dict[str, dict[str, Any]], update: dict[str, Any], source: str) -> None:
    for section, fields in update.items():
        if section not in SECTIONS:
            raise ConfigError(
                section, f"unknown section in {source}; expected one of {sorted(SECTIONS)}"
            )
        if not isinstance(fields, dict):
            raise ConfigError(section, f"expected a mapping of fields in {source}, got {fields!r}")
        for name, value in fields.items():
            old = base[section].get(name)
            both_dicts = isinstance(old, dict) and isinstance(value, dict)
            base[section][name] = {**old, **value} if both_dicts else value


def parse_override(item: str) -> dict[str, Any]:
    """``"optim.lr=0.1"`` -> ``{"optim": {"lr": 0.1}}`` (the value parsed as a YAML scalar).

    A third key part addresses an entry of a mapping field: ``data.args.split=2``.
    """
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not 2 <= len(parts) <= 3 or not all(parts):
        raise ConfigError(item, "expected an override of the form section.field=value")
    try:
        value: Any = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(key, f"cannot parse value {text!r}: {err}") from err
    for part in reversed(parts):
        value = {part: value}
    return value


def load_config(path: str | None, overrides: Sequence[str] = (), *, check: bool = True) -> Config:
    """Defaults <- YAML file at ``path`` <- ``section.field=value`` overrides, then validated.

    ``check=False`` skips the registry / path / method-signature checks (types still checked).
    """
    raw: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if path:
        _merge(raw, _read_yaml(path), path)
    for item in overrides:
        _merge(raw, parse_override(item), "overrides")
    cfg = Config(**{name: _build_section(cls, raw[name], name) for name, cls in SECTIONS.items()})
    return validate(cfg) if check else cfg


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """Plain nested dict (YAML / checkpoint safe); method hyper-parameters written flat."""
    out = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    out["method"] = {"name": cfg.method.name, **cfg.method.hparams}
    return _plain(out)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two :func:`config_to_dict` dicts (not train.resume)."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(old), flat(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k != "train.resume")


def config_from_dict(raw: dict[str, Any], *, check: bool = False) -> Config:
    """Inverse of :func:`config_to_dict` (e.g. the config stored in a checkpoint)."""
    merged: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    _merge(merged, raw, "checkpoint config")
    cfg = Config(**{n: _build_section(c, merged[n], n) for n, c in SECTIONS.items()})
    return validate(cfg) if check else cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (the file ``load_config`` reads back)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
