"""Settings of ``vidssl eval``: an optional YAML file plus ``key=value`` overrides.

Shared by the frozen-feature protocols (``vidssl.app.eval``) and the text protocols
(``vidssl.app.zeroshot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
