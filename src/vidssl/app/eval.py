"""``vidssl eval``: evaluate a checkpoint (or a random init) with one protocol or all of them.

    vidssl eval retrieval --checkpoint runs/simclr/last.pt --data ucf101 --root data/UCF-101
    vidssl eval all --checkpoint runs/simclr/last.pt --data hmdb51 --root data/hmdb51 --split all
    vidssl eval linear --checkpoint random --backbone r3d_18 --width 0.25 --data synthetic \\
        --seeds 3 --out runs/random num_clips=4 data.num_videos=64

Protocols: the names of :data:`vidssl.eval.protocols.PROTOCOLS` (``all``: those that say
``in_all``). Settings come from
:class:`vidssl.app.evaluate.EvalConfig`: its defaults <- ``--config FILE`` (YAML: the
EvalConfig fields, plus an optional ``data:`` mapping of dataset builder arguments) <-
``key=value`` overrides (``num_clips=4``, ``eval.linear_epochs=50``, ``data.num_videos=64``;
values parsed as YAML scalars).

Results are printed as tables (mean ± std over splits x seeds) and written to
``OUT/eval/*.json`` with the report's artefacts (``vidssl report OUT`` draws them). ``--out``
defaults to the checkpoint's folder (the pre-training run folder); with ``--checkpoint
random`` and no ``--out`` nothing is written.

Exit codes: 0 done, 1 the run failed (unreadable checkpoint or videos), 2 bad input
(unknown protocol or dataset, missing file or folder, bad setting), reported before any work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vidssl.app.eval_settings import add_weights_arguments, parse_settings
from vidssl.eval.protocols import ALL, PROTOCOLS, names

PROTOCOL_CHOICES_HELP = " | ".join([*ALL, "all", *(n for n in PROTOCOLS if n not in ALL)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", metavar="PROTOCOL", help=PROTOCOL_CHOICES_HELP)
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint of vidssl pretrain / train-supervised, or 'random' (random init)",
    )
    parser.add_argument(
        "--data", default="synthetic", metavar="DATASET", help="dataset name (default synthetic)"
    )
    parser.add_argument("--root", default=None, metavar="DIR", help="the dataset's folder")
    parser.add_argument("--split", default="1", help="1, 2, 3 or all (mean ± std over 1-3)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (mean ± std)")
    parser.add_argument(
        "--out",
        default=None,
        metavar="RUN_DIR",
        help="write OUT/eval/*.json and the report's arrays (default: the checkpoint's folder)",
    )
    parser.add_argument("--config", default=None, metavar="FILE", help="YAML eval settings")
    add_weights_arguments(
        parser,
        "two-stream (CVTCL) checkpoints: RGB, flow, or both (features averaged)",
        "stored flow mirroring --root (vidssl flow); default: flow computed on the fly",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="eval settings (num_clips=4 linear_epochs=50) and dataset arguments (data.num_videos=64)",
    )
    allow_trailing_overrides(parser)


def allow_trailing_overrides(parser: argparse.ArgumentParser, dest: str = "overrides") -> None:
    """Accept ``KEY=VALUE`` words anywhere, also after options.

    argparse binds a ``nargs="*"`` positional at the first run of positional words, so in
    ``vidssl eval all --checkpoint X num_clips=4`` the override would be "unrecognized". This
    wraps this (sub-)parser's ``parse_known_args`` to move such leftover words into ``dest``.
    """
    parse_known = parser.parse_known_args

    def parse_known_args(
        args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = parse_known(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        setattr(ns, dest, [*(getattr(ns, dest, None) or []), *late])
        return ns, [a for a in extras if a not in late]

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _print_tables(results: list[Any], title: str) -> None:
    from vidssl.eval.stats import results_tables, to_markdown

    for table in results_tables(results):
        print(f"\n{title}: {table.title} (%, mean ± std over splits x seeds)")
        print(to_markdown(table), end="")


def _print_text_result(result: Any, protocol: str, out: str | None) -> int:
    """The table of a text protocol's result and where it was written."""
    from vidssl.app.zeroshot import text_result_path
    from vidssl.eval.stats import results_tables, to_markdown

    for table in results_tables([result]):
        print(f"\n{protocol}: {table.title} (%)")
        print(to_markdown(table), end="")
    where = text_result_path(result, protocol, Path(out)) if out is not None else "nothing"
    print(f"\nclasses: {', '.join(result.info['classes'])}; wrote {where}")
    return 0


def run(args: argparse.Namespace) -> int:
    from vidssl import dist
    from vidssl.app.evaluate import (
        RANDOM,
        check_protocols,
        eval_config_from_dict,
        evaluate,
    )
    from vidssl.config import ConfigError
    from vidssl.eval.protocols import text_settings_from_dict
    from vidssl.eval.weights import read_weights

    text = args.protocol in names("text")  # run on a language-video checkpoint's own method
    protocols = list(ALL) if args.protocol == "all" else [args.protocol]
    out = args.out
    if out is None and args.checkpoint != RANDOM:
        out = str(Path(args.checkpoint).parent)
    try:
        if text:
            fields, data_args = parse_settings(args.config, list(args.overrides))
            results = evaluate(
                args.checkpoint,
                protocols=protocols,
                dataset_args=data_args,
                out_dir=out,
                text_cfg=text_settings_from_dict(fields),
            )
            return _print_text_result(results[0], args.protocol, out)
        check_protocols(protocols)
        fields, data_args = parse_settings(args.config, list(args.overrides))
        cfg = eval_config_from_dict(fields)
        results = evaluate(
            read_weights(
                args.checkpoint,
                backbone=args.backbone,
                width=args.width,
                stream=args.stream,
                flow_root=args.flow_root,
            ),
            protocols=protocols,
            dataset=args.data,
            root=args.root,
            dataset_args=data_args,
            split=args.split,
            seeds=args.seeds,
            out_dir=out,
            eval_cfg=cfg,
        )
    except (ConfigError, FileNotFoundError) as err:
        print(f"vidssl eval: {err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as err:
        print(f"vidssl eval: failed: {err}", file=sys.stderr)
        return 1
    finally:
        dist.cleanup()
    if results:  # empty on ranks > 0 under torchrun
        _print_tables(results, f"{args.data} ({args.checkpoint})")
        if out is not None:
            print(f"\nwrote {len(results)} result files to {Path(out) / 'eval'}")
        else:
            print("\nresults not saved (give --out RUN_DIR to keep them)")
    return 0
