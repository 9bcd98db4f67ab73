"""Prepared frame storage: one ``.vfs`` file per video, random access to any frame.

Layout (all integers little-endian)::

    b"VFSTORE1"                                  8-byte magic
    payload 0, payload 1, ...                    encoded planes, frame-major
    header                                       UTF-8 JSON (see ``StoreHeader``)
    offsets                                      uint64 x (num_frames * planes + 1)
    footer: header_pos u64, header_len u64, b"VFSEND01"

Each frame is ``planes`` payloads, payload ``f * planes + p`` lying at
``offsets[i] : offsets[i + 1]``. Codecs (``codec`` in the header):

- ``"jpeg"`` (default, lossy, quality 90): 3-channel frames are one RGB JPEG; 1- and
  2-channel frames (optical flow x, y) are one grayscale JPEG per channel.
- ``"png"``: lossless, one PNG per frame (L, LA or RGB).
- ``"raw"``: the uint8 bytes as they are; fastest to read, 5-10x larger than JPEG.

Frames are uint8 ``(H, W, C)`` with C in 1..3, all of one size. The header and the offset
table sit at the end so that a writer streams frames straight to disk. Files are written
to a temporary name, fsync'ed and renamed, so a ``.vfs`` file that exists is complete.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidssl.data.extensions import STORE_SUFFIX  # noqa: F401  (re-exported)
from vidssl.data.video import VideoDecodeError, VideoInfo, describe_exception

MAGIC = b"VFSTORE1"
END_MAGIC = b"VFSEND01"
_FOOTER = struct.Struct("<QQ8s")
FORMAT_VERSION = 1


@dataclass
class StoreHeader:
    """The JSON header of a ``.vfs`` file."""

    fps: float
    num_frames: int
    height: int
    width: int
    channels: int
    codec: str
    planes: int
    quality: int | None = None
    source: str | None = None
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


# -- per-codec plane encoders / decoders --------------------------------------------------


def _encode_jpeg(frame: np.ndarray, quality: int) -> list[bytes]:
    """(H, W, C) -> one RGB JPEG (C = 3) or one grayscale JPEG per channel (C = 1, 2)."""
    planes = [frame] if frame.shape[2] == 3 else [frame[:, :, c] for c in range(frame.shape[2])]
    out = []
    for plane in planes:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(plane)).save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def _encode_png(frame: np.ndarray, quality: int) -> list[bytes]:
    buf = io.BytesIO()
    plane = frame[:, :, 0] if frame.shape[2] == 1 else frame  # Pillow infers L, LA or RGB
    Image.fromarray(np.ascontiguousarray(plane)).save(buf, "PNG", compress_level=1)
    return [buf.getvalue()]


def _encode_raw(frame: np.ndarray, quality: int) -> list[bytes]:
    return [np.ascontiguousarray(frame).tobytes()]


def _decode_jpeg(data: bytes, h: int, w: int, c: int) -> np.ndarray:
    """One JPEG -> (h, w, c), c = 3 (RGB) or 1 (grayscale).

    ``Image.frombytes`` runs Pillow's JPEG decoder directly, skipping the Python marker
    parsing of ``Image.open`` (about 20% of the read time of a 128-px frame); the store
    header already gives the size.
    """
    mode = "RGB" if c == 3 else "L"
    return np.asarray(Image.frombytes(mode, (w, h), data, "jpeg", mode, "")).reshape(h, w, c)


def _decode_png(data: bytes, h: int, w: int, c: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data), formats=["PNG"])).reshape(h, w, c)


def _decode_raw(data: bytes, h: int, w: int, c: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(h, w, c)


# codec -> decoder of one payload into (H, W, channels of that payload)
DECODERS: dict[str, Callable[[bytes, int, int, int], np.ndarray]] = {
    "jpeg": _decode_jpeg,
    "png": _decode_png,
    "raw": _decode_raw,
}


# codec -> (planes per frame given channels, encoder)
ENCODERS: dict[str, tuple[Callable[[int], int], Callable[[np.ndarray, int], list[bytes]]]] = {
    "jpeg": (lambda c: 1 if c == 3 else c, _encode_jpeg),
    "png": (lambda c: 1, _encode_png),
    "raw": (lambda c: 1, _encode_raw),
}


class FrameStoreWriter:
    """Stream frames into a ``.vfs`` file; the file appears (atomically) on ``close()``.

    Use as a context manager: on an exception the temporary file is removed and nothing
    appears at ``path``.

    Args:
        path: output file (parent folders are created).
        fps: frame rate recorded in the header.
        codec: ``"jpeg"``, ``"png"`` or ``"raw"``.
        quality: JPEG quality (1-95).
        source: the source video, recorded in the header.
        extra: more JSON-serialisable header fields (e.g. flow bounds).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        codec: str = "jpeg",
        quality: int = 90,
        source: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if codec not in ENCODERS:
            raise ValueError(f"unknown storage codec {codec!r}; choose from {sorted(ENCODERS)}")
        if not 1 <= quality <= 95:
            raise ValueError(f"JPEG quality must be in 1..95, got {quality}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.codec, self.quality = float(fps), codec, quality
        self.source, self.extra = source, dict(extra or {})
        # hidden, unique temporary name; mode 0o666 minus the umask like any new file
        self._tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file = os.fdopen(fd, "wb")
        self._file.write(MAGIC)
        self._offsets: list[int] = [len(MAGIC)]
        self._shape: tuple[int, int, int] | None = None
        self._closed = False

    @property
    def num_frames(self) -> int:
        planes = ENCODERS[self.codec][0](self._shape[2]) if self._shape else 1
        return (len(self._offsets) - 1) // planes

    def add(self, frame: np.ndarray) -> None:
        """Append one frame: (H, W, C) or (H, W) uint8, C in 1..3."""
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = frame[:, :, None]  # (H, W) -> (H, W, 1)
        if frame.dtype != np.uint8 or frame.ndim != 3 or not 1 <= frame.shape[2] <= 3:
            raise ValueError(
                f"{self.path}: frames must be uint8 (H, W, C) with C in 1..3, "
                f"got {frame.dtype} {frame.shape}"
            )
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"{self.path}: frame shape {frame.shape} != first {self._shape}")
        for payload in ENCODERS[self.codec][1](frame, self.quality):
            self._file.write(payload)
            self._offsets.append(self._offsets[-1] + len(payload))

    def extend(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.add(frame)

    def close(self) -> StoreHeader:
        """Write header + offsets + footer, fsync, and rename into place."""
        if self._shape is None:
            self.abort()
            raise ValueError(f"{self.path}: no frames to store")
        h, w, c = self._shape
        header = StoreHeader(
            fps=self.fps,
            num_frames=self.num_frames,
            height=h,
            width=w,
            channels=c,
            codec=self.codec,
            planes=ENCODERS[self.codec][0](c),
            quality=self.quality if self.codec == "jpeg" else None,
            source=self.source,
            extra=self.extra,
        )
        blob = json.dumps(asdict(header)).encode("utf-8")
        header_pos = self._offsets[-1]
        self._file.write(blob)
        self._file.write(np.asarray(self._offsets, dtype="<u8").tobytes())
        self._file.write(_FOOTER.pack(header_pos, len(blob), END_MAGIC))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)
        self._closed = True
        return header

    def abort(self) -> None:
        """Drop the temporary file; nothing is written at ``path``."""
        if not self._closed:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self) -> FrameStoreWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: some file systems refuse directory fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_frames(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "jpeg",
    quality: int = 90,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> StoreHeader:
    """Write ``frames`` (each (H, W, C) uint8) to ``path`` atomically; returns the header."""
    with FrameStoreWriter(path, fps, codec, quality, source, extra) as writer:
        writer.extend(frames)
        return writer.close()


class FrameStore:
    """Reader of a ``.vfs`` file (implements ``VideoSource``).

    ``get_frames(indices) -> (T, H, W, C)`` uint8 in the order of ``indices`` (repeats and
    any order allowed). A damaged file raises ``VideoDecodeError`` naming it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:  # ValueError: mmap of an empty file
            raise VideoDecodeError(self.path, exc) from exc
        try:
            self.header, self._offsets = self._read_index()
        except VideoDecodeError:
            self.close()
            raise
        self.num_frames = self.header.num_frames
        self.fps = self.header.fps
        self.height, self.width = self.header.height, self.header.width
        self.channels = self.header.channels

    def _read_index(self) -> tuple[StoreHeader, np.ndarray]:
        m = self._map
        size = len(m)
        if size < len(MAGIC) + _FOOTER.size or m[: len(MAGIC)] != MAGIC:
            raise VideoDecodeError(self.path, "not a .vfs frame store (bad magic)")
        header_pos, header_len, end = _FOOTER.unpack(m[size - _FOOTER.size :])
        if end != END_MAGIC or header_pos + header_len > size - _FOOTER.size:
            raise VideoDecodeError(self.path, "truncated .vfs frame store (bad footer)")
        try:
            fields = json.loads(bytes(m[header_pos : header_pos + header_len]).decode("utf-8"))
            header = StoreHeader(**fields)
        except (ValueError, TypeError) as exc:
            raise VideoDecodeError(self.path, f"bad .vfs header: {exc}") from exc
        if header.version > FORMAT_VERSION or header.codec not in ENCODERS:
            raise VideoDecodeError(
                self.path, f"unsupported .vfs version {header.version} / codec {header.codec}"
            )
        count = header.num_frames * header.planes + 1
        table_pos = header_pos + header_len
        if table_pos + 8 * count != size - _FOOTER.size or header.num_frames < 1:
            raise VideoDecodeError(self.path, "offset table does not match the header")
        offsets = np.frombuffer(m, dtype="<u8", count=count, offset=table_pos).astype(np.int64)
        if offsets[0] != len(MAGIC) or offsets[-1] != header_pos or np.any(np.diff(offsets) < 0):
            raise VideoDecodeError(self.path, "corrupt offset table")
        return header, offsets

    def close(self) -> None:
        if getattr(self, "_map", None) is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        h = self.header
        return (
            f"FrameStore({self.path!r}, num_frames={h.num_frames}, fps={h.fps:.3f}, "
            f"{h.height}x{h.width}x{h.channels} {h.codec})"
        )

    def _payload(self, i: int) -> bytes:
        return self._map[self._offsets[i] : self._offsets[i + 1]]

    def _frame(self, index: int, out: np.ndarray) -> None:
        """Decode frame ``index`` into ``out`` (H, W, C)."""
        h = self.header
        decode = DECODERS[h.codec]
        if h.planes == 1:
            out[...] = decode(self._payload(index), h.height, h.width, h.channels)
            return
        for c in range(h.planes):  # one single-channel payload per channel
            payload = self._payload(index * h.planes + c)
            out[:, :, c : c + 1] = decode(payload, h.height, h.width, 1)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices``: (T,) -> (T, H, W, C) uint8."""
        if self._map is None:
            raise VideoDecodeError(self.path, "frame store is closed")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= self.num_frames)]
        if bad.shape[0]:
            raise IndexError(
                f"{self.path}: frame index {int(bad[0])} out of range [0, {self.num_frames})"
            )
        h = self.header
        out = np.empty((idx.shape[0], h.height, h.width, h.channels), dtype=np.uint8)
        done: dict[int, int] = {}  # frame index -> row of `out` already holding it
        for t, i in enumerate(idx.tolist()):
            if i in done:
                out[t] = out[done[i]]
                continue
            try:
                self._frame(i, out[t])
            except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors on bad data
                raise VideoDecodeError(self.path, f"frame {i}: {describe_exception(exc)}") from exc
            done[i] = t
        return out

    def info(self, check: bool = True) -> VideoInfo:
        """``VideoInfo`` of the store; with ``check`` decode the first, middle and last frame."""
        h = self.header
        if check:
            self.get_frames(sorted({0, h.num_frames // 2, h.num_frames - 1}))
        return VideoInfo(
            path=self.path,
            frames=h.num_frames,
            fps=h.fps,
            width=h.width,
            height=h.height,
            duration=h.num_frames / h.fps,
            codec=f"vfs/{h.codec}",
            stream_index=0,
            size_bytes=len(self._map) if self._map is not None else 0,
            rotation=0,
        )
