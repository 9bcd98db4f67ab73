"""``vidssl search EMB_DIR --query VIDEO_OR_INDEX [--k 10] [--html OUT]``: the nearest videos.

The query is an embedding row number, a video of the collection (its path as listed in
``manifest.tsv``), or any other video file, which is then embedded with the checkpoint and
settings recorded in ``EMB_DIR/embed.json``. Neighbours are ranked by cosine similarity
(:mod:`vidssl.eval.search`); the query itself is left out when it belongs to the collection.
``--html`` writes a self-contained page with a strip of frames of the query and of each
neighbour (frames upright, rotation metadata applied).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vidssl.eval.search import AUTO_FAISS_MIN_ROWS, IVF_MIN_ROWS, IVF_NPROBE

STRIP_FRAMES = 6  # frames shown per video on the page
STRIP_HEIGHT = 72  # their height in pixels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "emb_dir", type=Path, metavar="EMB_DIR", help="folder written by vidssl embed"
    )
    parser.add_argument(
        "--query", required=True, metavar="VIDEO_OR_INDEX", help="embedding row, or a video file"
    )
    parser.add_argument("--k", type=int, default=10, help="neighbours to show (default 10)")
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="OUT",
        help="also write an HTML page with frame strips",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "faiss"),
        help="search backend (see below)",
    )
    parser.epilog = (
        "Backends: 'torch' is exact search (one matrix product over all embeddings). 'faiss' "
        "needs the search extra (pip install 'vidssl[search]'): an exact IndexFlatIP below "
        f"{IVF_MIN_ROWS:,} embeddings, an approximate IndexIVFFlat (sqrt(N) lists, {IVF_NPROBE} "
        "visited per query, saved in EMB_DIR and reused) from that size. 'auto' (default) uses "
        f"faiss from {AUTO_FAISS_MIN_ROWS:,} embeddings when faiss is installed, torch otherwise. "
        "Exit status: 0 done, 1 the query video cannot be read, 2 bad input."
    )


def _query_row(collection: Any, query: str) -> int | None:
    """Embedding row of the query when it is a row number or a video of the collection."""
    n = len(collection.embeddings)
    if query.lstrip("-").isdigit():
        row = int(query)
        if not 0 <= row < n:
            raise ValueError(f"--query {row}: the collection has rows 0..{n - 1}")
        return row
    entry = collection.find(query)
    if entry is None:
        return None
    if int(entry["row"]) < 0:
        raise ValueError(f"{query} is in the collection but unreadable: {entry['error']}")
    return int(entry["row"])


def embed_query(collection: Any, path: str) -> np.ndarray:
    """The embedding of a video outside the collection, made as ``vidssl embed`` made the rest."""
    from vidssl.eval.embed import embed_loader, eval_recipe, iter_embedding_chunks
    from vidssl.eval.weights import read_weights

    meta = collection.meta
    weights = read_weights(
        meta["checkpoint"], backbone=meta["backbone"], width=meta["width"], stream=meta["stream"]
    )
    if weights.key(0) != meta["weights"]:
        raise ValueError(f"{meta['checkpoint']} has changed since the collection was embedded")
    s = meta["settings"]
    model = weights.build(0)
    recipe = eval_recipe(model.modalities, s, s["num_clips"], s["num_crops"])
    chunks = list(
        iter_embedding_chunks(model, embed_loader([path], recipe), clip_norm=s["clip_norm"])
    )
    record = chunks[0].records[0]
    if record.error:
        raise ValueError(f"cannot read the query video {path}: {record.error}")
    return chunks[0].feats.numpy()


def frame_strip_uri(path: str) -> str:
    """A JPEG data URI of ``STRIP_FRAMES`` frames of ``path`` side by side (upright)."""
    from PIL import Image

    from vidssl.data.sources import open_video
    from vidssl.viz.plots import frame_indices, frame_strip

    with open_video(path) as video:  # type: ignore[attr-defined]
        frames = video.get_frames(frame_indices(video.num_frames, STRIP_FRAMES))  # (S, H, W, 3)
    h, w = frames.shape[1:3]
    size = (max(1, round(w * STRIP_HEIGHT / h)), STRIP_HEIGHT)
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
    buf = io.BytesIO()
    Image.fromarray(frame_strip(small)).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _strip_html(path: str) -> str:
    from vidssl.data.video import VideoDecodeError

    try:
        return f'<img src="{frame_strip_uri(path)}" alt="frames of {html.escape(path)}">'
    except (VideoDecodeError, OSError) as err:
        return f'<span class="err">frames not available: {html.escape(str(err))}</span>'


def write_page(
    out: Path, query: str, rows: list[tuple[int, float, dict[str, str]]], emb_dir: Path
) -> None:
    """The search page: the query's frame strip, then one row per neighbour."""
    body = [
        f"<h1>Nearest videos</h1><p>collection <code>{html.escape(str(emb_dir))}</code></p>",
        f"<h2>Query</h2><p><code>{html.escape(query)}</code></p>{_strip_html(query)}",
        "<h2>Neighbours</h2><table><tr><th>#</th><th>cosine</th><th>video</th><th>frames</th></tr>",
    ]
    for rank, (row, score, m) in enumerate(rows, 1):
        body.append(
            f"<tr><td>{rank}</td><td>{score:.4f}</td><td><code>{html.escape(m['path'])}</code>"
            f"<br>row {row}, {m['duration']} s</td><td>{_strip_html(m['path'])}</td></tr>"
        )
    body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left;vertical-align:top}"
        ".err{color:#a00}img{border:1px solid #ccc}"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vidssl search</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)


def run(args: argparse.Namespace) -> int:
    from vidssl.eval.collection import load_collection
    from vidssl.eval.search import build_index

    if args.k < 1:
        print("vidssl search: --k must be >= 1", file=sys.stderr)
        return 2
    try:
        collection = load_collection(args.emb_dir)
        row = _query_row(collection, args.query)
    except (FileNotFoundError, ValueError) as err:
        print(f"vidssl search: {err}", file=sys.stderr)
        return 2
    if row is None and not Path(args.query).is_file():
        print(
            f"vidssl search: --query {args.query} is neither a row, a video of the collection, nor a file",
            file=sys.stderr,
        )
        return 2
    try:
        q = (
            collection.embeddings[row][None]
            if row is not None
            else embed_query(collection, args.query)
        )
        index = build_index(collection.embeddings, args.backend, cache_dir=args.emb_dir)
    except (ValueError, RuntimeError) as err:
        print(f"vidssl search: {err}", file=sys.stderr)
        return 1
    scores, rows = index.search(np.asarray(q, dtype=np.float32), args.k + (row is not None))
    found = [(int(r), float(s)) for s, r in zip(scores[0], rows[0]) if 0 <= int(r) != row]
    hits = [(r, s, collection.row_entry(r)) for r, s in found[: args.k]]
    query_name = collection.row_entry(row)["path"] if row is not None else args.query
    print(f"query: {query_name}" + (f" (row {row})" if row is not None else ""))
    print(f"{'#':>3}  {'cosine':>7}  {'row':>6}  path")
    for rank, (r, score, m) in enumerate(hits, 1):
        print(f"{rank:>3}  {score:7.4f}  {r:>6}  {m['path']}")
    if args.html is not None:
        write_page(args.html, query_name, hits, args.emb_dir)
        print(f"wrote {args.html}")
    return 0
