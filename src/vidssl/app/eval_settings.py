"""Settings shared by the commands that read a checkpoint's backbone.

- :func:`parse_settings`: an optional YAML file plus ``key=value`` overrides (``vidssl eval``,
  its text protocols in ``vidssl.app.zeroshot``, ``vidssl embed``);
- :func:`add_weights_arguments`: which backbone of which checkpoint (``--backbone``,
  ``--width`` for ``random``; ``--stream``, ``--flow-root`` for two-stream checkpoints) in
  ``vidssl eval``, ``embed`` and ``export``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from vidssl.models.two_stream import STREAMS


def add_weights_arguments(
    parser: argparse.ArgumentParser, stream_help: str, flow_root_help: str | None = None
) -> None:
    """``--backbone``, ``--width``, ``--stream`` and (with ``flow_root_help``) ``--flow-root``."""
    parser.add_argument("--backbone", default=None, help="backbone name (required with random)")
    parser.add_argument("--width", type=float, default=None, help="width (required with random)")
    parser.add_argument("--stream", default="rgb", choices=tuple(STREAMS), help=stream_help)
    if flow_root_help is not None:
        parser.add_argument("--flow-root", default=None, metavar="DIR", help=flow_root_help)


def parse_settings(
    config_file: str | None, overrides: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(EvalConfig fields, dataset builder arguments) from the YAML file and the overrides.

    Raises :class:`vidssl.config.ConfigError` naming the file or the override.
    """
    from vidssl.config import ConfigError

    fields: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError("--config", f"file not found: {config_file}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError("--config", f"{config_file} is not valid YAML: {err}") from err
        if not isinstance(raw, dict):
            raise ConfigError("--config", f"{config_file} must hold a mapping of settings")
        raw = dict(raw)
        section = raw.pop("data", {}) or {}
        if not isinstance(section, dict):
            raise ConfigError("data", f"expected a mapping of dataset arguments in {config_file}")
        data.update(section)
        fields.update(raw.pop("eval", {}) or {})
        fields.update(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(item, "expected an override of the form key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(key, f"cannot parse value {text!r}: {err}") from err
        head, _, rest = key.partition(".")
        if head == "data" and rest:
            data[rest] = value
        elif head == "eval" and rest:
            fields[rest] = value
        else:
            fields[key] = value
    return fields, data
