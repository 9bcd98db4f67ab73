"""vidssl: self-supervised and language-supervised video representation learning.

The public API (``vidssl.load_backbone``, ``vidssl.embed_videos``, ``vidssl.read_clip``) is
imported on first use, so ``import vidssl`` (and the CLI start-up) stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "embed_videos", "load_backbone", "read_clip"]

# public name -> module defining it (imported lazily, PEP 562)
_LAZY: dict[str, str] = {
    "embed_videos": "vidssl.api",
    "load_backbone": "vidssl.api",
    "read_clip": "vidssl.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidssl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
