"""An embedded video collection on disk (written by ``vidssl embed``, read by ``vidssl search``).

``EMB_DIR/``:

=====================  =====================================================================
``embed.json``         what made the embeddings: weights, backbone, stream, clip settings
``embeddings.npy``     ``(N, D)`` float32, L2-normalised rows (``numpy.load(mmap_mode="r")``)
``manifest.tsv``       one line per video: ``row`` (embedding row, -1 when unreadable),
                       ``path``, ``duration`` (s), ``frames``, ``fps``, ``height``, ``width``
                       (displayed, after rotation metadata), ``clips`` (views averaged),
                       ``error`` (empty when embedded)
``parts/*.pt``         the chunks written while embedding (resume and ``--shard`` merge)
=====================  =====================================================================
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidssl.eval.embed import EmbeddingChunk, VideoRecord

COLLECTION_FORMAT = "vidssl.embeddings/1"
META_NAME = "embed.json"
EMBEDDINGS_NAME = "embeddings.npy"
MANIFEST_NAME = "manifest.tsv"
PARTS_DIR = "parts"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "row",
    "path",
    "duration",
    "frames",
    "fps",
    "height",
    "width",
    "clips",
    "error",
)


@dataclass
class Collection:
    """A loaded collection. The manifest is kept as text lines and parsed on demand, so that
    loading a million-video collection stays quick."""

    root: Path
    embeddings: np.ndarray  # (N, D) float32, L2-normalised rows (memory-mapped)
    meta: dict[str, Any]
    columns: list[str]  # manifest header
    lines: list[str]  # manifest lines (one per video, readable or not), header excluded
    line_of_row: np.ndarray  # (N,) int64: manifest line of each embedding row

    def entry(self, line: int) -> dict[str, str]:
        """Manifest line ``line`` as a dict (MANIFEST_COLUMNS -> text)."""
        return dict(zip(self.columns, self.lines[line].split("\t")))

    def row_entry(self, row: int) -> dict[str, str]:
        """The manifest entry of embedding row ``row``."""
        return self.entry(int(self.line_of_row[row]))

    @property
    def manifest(self) -> list[dict[str, str]]:
        """Every manifest entry (parses all lines)."""
        return [self.entry(i) for i in range(len(self.lines))]

    def find(self, path: str | Path) -> dict[str, str] | None:
        """The entry of ``path`` (as listed, or the same file by resolved path), or None."""
        text, name = str(path), Path(path).name
        resolved = None
        for i, line in enumerate(self.lines):
            listed = line.split("\t", 2)[1]
            if listed == text:
                return self.entry(i)
            if Path(listed).name == name:  # the same file under another spelling?
                resolved = resolved or Path(path).resolve()
                if Path(listed).resolve() == resolved:
                    return self.entry(i)
        return None


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_meta(root: Path, meta: Mapping[str, Any]) -> None:
    """``embed.json`` (atomic)."""
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": COLLECTION_FORMAT, **meta}, indent=2, sort_keys=True)
    _atomic_write(root / META_NAME, lambda p: p.write_text(text + "\n"))


def read_meta(root: Path) -> dict[str, Any] | None:
    """``embed.json`` of ``root``, or None when absent; raises ValueError naming a bad file."""
    path = root / META_NAME
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if meta.get("format") != COLLECTION_FORMAT:
        raise ValueError(f"{path} is not a vidssl embeddings file (format {COLLECTION_FORMAT!r})")
    return meta


def save_part(root: Path, name: str, chunk: EmbeddingChunk) -> Path:
    """One chunk as ``parts/<name>.pt``: its records and the rows of the readable videos."""
    parts = root / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    row_of = {int(i): j for j, i in enumerate(chunk.indices.tolist())}
    payload = {
        "records": [asdict(r) for r in chunk.records],
        "rows": [row_of.get(r.index, -1) for r in chunk.records],
        "feats": chunk.feats.float().contiguous(),
    }
    path = parts / f"{name}.pt"
    _atomic_write(path, lambda p: torch.save(payload, p))
    return path


def load_parts(root: Path) -> dict[str, tuple[VideoRecord, np.ndarray | None]]:
    """Every stored video: path -> (record, embedding or None when unreadable)."""
    done: dict[str, tuple[VideoRecord, np.ndarray | None]] = {}
    for path in sorted((root / PARTS_DIR).glob("*.pt")):
        try:
            part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # written atomically: a bad part is someone else's file
            raise ValueError(f"cannot read embeddings part {path}: {err}") from err
        feats = part["feats"].numpy()
        for rec, row in zip(part["records"], part["rows"]):
            record = VideoRecord(**rec)
            done[record.path] = (record, feats[row] if row >= 0 else None)
    return done


def write_collection(
    root: Path, paths: Sequence[str], done: Mapping[str, tuple[VideoRecord, np.ndarray | None]]
) -> tuple[int, int]:
    """``embeddings.npy`` + ``manifest.tsv`` for ``paths`` (in that order) from stored parts.
    Returns (embedded, unreadable)."""
    rows: list[np.ndarray] = []
    lines: list[dict[str, Any]] = []
    for path in paths:
        record, feat = done[path]
        lines.append(
            {
                "row": len(rows) if feat is not None else -1,
                "path": path,
                "duration": f"{record.duration:.3f}",
                "frames": record.frames,
                "fps": f"{record.fps:.3f}",
                "height": record.height,
                "width": record.width,
                "clips": record.clips,
                "error": record.error.replace("\t", " ").replace("\n", " "),
            }
        )
        if feat is not None:
            rows.append(feat)
    dim = rows[0].shape[0] if rows else 0
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    _atomic_write(root / EMBEDDINGS_NAME, lambda p: np.save(open(p, "wb"), matrix))

    def write_tsv(p: Path) -> None:
        with open(p, "w", newline="") as f:
            writer = csv.DictWriter(f, MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(lines)

    _atomic_write(root / MANIFEST_NAME, write_tsv)
    return len(rows), len(lines) - len(rows)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Lines of a ``manifest.tsv`` as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_collection(root: str | Path, mmap: bool = True) -> Collection:
    """Read ``EMB_DIR``; raises ``FileNotFoundError`` / ``ValueError`` naming the file."""
    root = Path(root)
    meta = read_meta(root)
    for name in (EMBEDDINGS_NAME, MANIFEST_NAME):
        if meta is None or not (root / name).is_file():
            raise FileNotFoundError(
                f"{root / name} not found: not a finished `vidssl embed` folder "
                "(still running, or shards not merged: `vidssl embed ... --merge`)"
            )
    embeddings = np.load(root / EMBEDDINGS_NAME, mmap_mode="r" if mmap else None)
    header, *lines = (root / MANIFEST_NAME).read_text().splitlines()
    rows = np.array([line[: line.index("\t")] for line in lines], dtype=np.int64)  # (L,)
    line_of_row = np.flatnonzero(rows >= 0)  # (N,) lines of the readable videos
    if embeddings.ndim != 2 or not np.array_equal(rows[line_of_row], np.arange(len(embeddings))):
        raise ValueError(f"{root}: {EMBEDDINGS_NAME} and {MANIFEST_NAME} disagree")
    return Collection(root, embeddings, meta or {}, header.split("\t"), lines, line_of_row)
