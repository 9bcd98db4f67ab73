"""``vidssl embed SRC --checkpoint CKPT|random --out EMB_DIR``: one embedding per video.

    vidssl embed ~/footage --checkpoint runs/cvrl/last.pt --out emb/footage
    vidssl embed data/UCF-101 --data ucf101 --checkpoint last.pt --out emb/ucf num_clips=4
    vidssl embed frames/ --checkpoint last.pt --out emb/x --shard 2/8     # on 8 machines, then
    vidssl embed frames/ --checkpoint last.pt --out emb/x --merge

SRC is a folder (every video and ``.vfs`` file under it, recursively), one video file, or
with ``--data NAME`` the root of a dataset layout of ``vidssl eval`` (its train and test
videos). Clips and features are those of ``vidssl eval`` (same recipe, same
:func:`vidssl.eval.features.extract_features`; settings ``key=value`` as in eval:
``num_clips``, ``num_crops``, ``clip_len``, ``stride``, ``size``, ``batch_size``, ``workers``,
``amp``, ``device``), written as ``EMB_DIR/embeddings.npy`` + ``manifest.tsv``
(:mod:`vidssl.eval.collection`). Embeddings are stored in chunks as they are computed, so a
killed run continues where it stopped and a re-run over a grown folder embeds only the new
files. Unreadable files are listed in the manifest with their error.

Exit codes: 0 done (also with unreadable files, which are listed), 1 failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidssl.app.eval import allow_trailing_overrides
from vidssl.app.eval_settings import add_weights_arguments
from vidssl.app.progress import add_shard_argument

CHUNK_VIDEOS = 256  # videos per stored part: a killed run loses at most this many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", type=Path, metavar="SRC", help="folder of videos, a video, or a dataset root"
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="vidssl checkpoint or 'random'"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="EMB_DIR", help="output folder")
    parser.add_argument(
        "--data",
        default=None,
        metavar="DATASET",
        help="dataset layout of SRC (ucf101, hmdb51, kinetics, folder); default: every video under SRC",
    )
    parser.add_argument(
        "--subsets", default="train,test", help="with --data: subsets to embed (default train,test)"
    )
    add_weights_arguments(
        parser,
        "two-stream (CVTCL) checkpoints: RGB, flow, or both (features averaged)",
        "stored flow mirroring SRC (vidssl flow); default: computed on the fly",
    )
    parser.add_argument("--config", default=None, metavar="FILE", help="YAML eval settings")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="only join the stored parts (after --shard runs) into embeddings.npy + manifest.tsv",
    )
    add_shard_argument(parser)
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="eval settings, e.g. num_clips=4 batch_size=16 workers=4",
    )
    allow_trailing_overrides(parser)
    parser.epilog = (
        "Embeddings are stored in EMB_DIR/parts as they are computed: a killed run continues "
        "where it stopped and a finished video is never recomputed. With --shard K/N, runs on "
        "several machines share EMB_DIR; the run that completes the set writes embeddings.npy "
        "+ manifest.tsv (or run --merge). Exit status: 0 done (unreadable files are listed in "
        "manifest.tsv with their error), 1 failure, 2 bad input."
    )


def list_videos(
    src: Path, data: str | None, subsets: str, args: dict[str, Any]
) -> tuple[list[str], Any]:
    """(paths in a fixed order, opener or None) of SRC."""
    from vidssl.config import ConfigError
    from vidssl.data.extensions import find_video_files

    if data is None:
        if not src.exists():
            raise FileNotFoundError(f"SRC {src} does not exist")
        paths = [str(p) for p in find_video_files(src)]
        if not paths:
            raise ConfigError("SRC", f"no video files under {src}")
        return paths, None
    from vidssl.eval.splits import build_subset, check_dataset_args

    check_dataset_args(data, str(src), args)
    paths, opener = [], None
    for subset in [s for s in subsets.split(",") if s]:
        built = build_subset(data, str(src), args, subset)
        opener = built.opener
        paths += [it.path for it in built.index.items if it.path not in paths]
    return paths, opener


def run(args: argparse.Namespace) -> int:
    from vidssl.app.eval_settings import parse_settings
    from vidssl.config import ConfigError
    from vidssl.eval.protocols import eval_config_from_dict
    from vidssl.eval.weights import read_weights

    try:
        fields, data_args = parse_settings(args.config, list(args.overrides))
        cfg = eval_config_from_dict(fields)
        paths, opener = list_videos(args.src, args.data, args.subsets, data_args)
        weights = read_weights(
            args.checkpoint,
            backbone=args.backbone,
            width=args.width,
            stream=args.stream,
            flow_root=args.flow_root,
        )
        meta = {
            "checkpoint": weights.checkpoint,
            "weights": weights.key(0),
            "backbone": weights.backbone,
            "width": weights.width,
            "stream": args.stream,
            "source": str(args.src),
            "data": args.data,
            "settings": {
                **weights.clip_settings(cfg.clip_len, cfg.stride, cfg.size),
                "num_clips": cfg.num_clips,
                "num_crops": cfg.num_crops,
                "clip_norm": cfg.clip_norm,
            },
        }
        check_meta(args.out, meta)
    except (ConfigError, FileNotFoundError) as err:
        print(f"vidssl embed: {err}", file=sys.stderr)
        return 2
    try:
        if not args.merge:
            embed_missing(args, cfg, weights, meta, paths, opener)
        return finish(args.out, paths, args.merge)
    except (ValueError, RuntimeError) as err:
        print(f"vidssl embed: failed: {err}", file=sys.stderr)
        return 1


def check_meta(out: Path, meta: dict[str, Any]) -> None:
    """Write ``embed.json``, or check that an existing one has the same settings."""
    from vidssl.config import ConfigError
    from vidssl.eval.collection import read_meta, write_meta

    old = read_meta(out)
    if old is None:
        write_meta(out, meta)
        return
    keys = ("weights", "backbone", "width", "stream", "settings")
    diff = [k for k in keys if old.get(k) != meta[k]]
    if diff:
        raise ConfigError(
            "--out",
            f"{out} holds embeddings made with other {', '.join(diff)}; choose another --out",
        )


def embed_missing(
    args: argparse.Namespace,
    cfg: Any,
    weights: Any,
    meta: dict[str, Any],
    paths: list[str],
    opener: Any,
) -> None:
    """Embed the videos of this shard that no stored part holds yet."""
    import torch

    from vidssl.app.progress import progress, shard_items
    from vidssl.app.train.precision import guard_bf16_conv3d, resolve_amp
    from vidssl.eval.collection import load_parts, save_part
    from vidssl.eval.embed import embed_loader, eval_recipe, iter_embedding_chunks

    k, n = args.shard
    mine = shard_items(paths, k, n)
    done = load_parts(args.out)
    todo = [p for p in mine if p not in done]
    shard = f" (shard {k + 1}/{n})" if n > 1 else ""
    print(
        f"vidssl embed: {len(mine)} videos{shard}, {len(mine) - len(todo)} already embedded, {len(todo)} to do",
        file=sys.stderr,
    )
    if not todo:
        return
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    amp_dtype = resolve_amp(cfg.amp, device)
    model = weights.build(0).to(device)
    if amp_dtype is not None and device.type == "cpu":
        guard_bf16_conv3d(model)  # oneDNN bf16 conv3d defect, see precision.py
    recipe = eval_recipe(
        model.modalities,
        meta["settings"],
        cfg.num_clips,
        cfg.num_crops,
        input_args=weights.input_args(),
        root=str(args.src),
    )
    loader = embed_loader(
        todo, recipe, batch_size=cfg.batch_size, workers=cfg.workers, opener=opener, pin_memory=cuda
    )
    chunk_batches = max(1, CHUNK_VIDEOS // cfg.batch_size)
    first = (
        len(list((args.out / "parts").glob(f"s{k}of{n}-*.pt")))
        if (args.out / "parts").is_dir()
        else 0
    )
    with progress(total=len(todo), desc="embed", unit="video", disable=not cfg.progress) as bar:
        chunks = iter_embedding_chunks(
            model,
            loader,
            chunk_batches=chunk_batches,
            device=device,
            amp=amp_dtype is not None,
            clip_norm=cfg.clip_norm,
            on_batch=bar.update,
        )
        failed = 0
        for j, chunk in enumerate(chunks, first):
            # dataset indices are positions in `todo`: store paths, not indices
            save_part(args.out, f"s{k}of{n}-{j:06d}", chunk)
            failed += sum(1 for r in chunk.records if r.error)
            if failed:
                bar.set_postfix(unreadable=failed)


def finish(out: Path, paths: list[str], merge_only: bool) -> int:
    """Write embeddings.npy + manifest.tsv when every video is stored; report the rest."""
    from vidssl.eval.collection import MANIFEST_NAME, load_parts, write_collection

    done = load_parts(out)
    missing = [p for p in paths if p not in done]
    if missing:
        print(
            f"{len(paths) - len(missing)} of {len(paths)} videos embedded so far; run the other shards, then `vidssl embed ... --merge` (e.g. {missing[0]} is missing)"
        )
        return 1 if merge_only else 0
    embedded, bad = write_collection(out, paths, done)
    print(f"wrote {out / 'embeddings.npy'} ({embedded} videos) and {out / MANIFEST_NAME}")
    if bad:
        print(f"\n{bad} unreadable video(s), listed in {MANIFEST_NAME} with their error:")
        for path in paths:
            record, feat = done[path]
            if feat is None:
                print(f"  {path}: {record.error}")
    return 0
