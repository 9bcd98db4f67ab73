"""Small tagged files of plain tensors and strings, written atomically, read with weights_only.

The evaluation artefacts (retrieval examples, Grad-CAM examples) are dataclasses of tensors and
string lists; this module is the one place that writes and reads them.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch


def save_payload(obj: Any, path: str | Path, fmt: str, str_lists: tuple[str, ...] = ()) -> Path:
    """Write dataclass ``obj`` as ``{"format": fmt, **fields}`` to ``path`` (temp file + rename).

    ``str_lists`` names fields holding sequences of strings, stored as plain ``list[str]``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": fmt, **asdict(obj)}
    for name in str_lists:
        payload[name] = [str(v) for v in payload[name]]
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_payload(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The fields of a file written by :func:`save_payload` with ``fmt``; errors name the file."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # re-raised with the file name
        raise ValueError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} file ({fmt!r})")
    payload.pop("format")
    return payload
