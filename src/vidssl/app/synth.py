"""``vidssl synth OUT``: write the built-in synthetic dataset as video files.

``--layout folders`` (default) writes ``OUT/<train|test>/<motion class>/<id>.mp4`` (class-folder
layout), ``OUT/classes.json`` and ``OUT/labels.csv`` (appearance labels). Load it back with the
``synthetic`` dataset (``root=OUT``) or any class-folder layout.

``--layout ucf101`` writes it as UCF101 is distributed (motion labels only):
``OUT/videos/<motion>/v_<motion>_gNN_cMM.mp4`` and ``OUT/ucfTrainTestlist/`` (split 1 = the
set's train / test subsets; :mod:`vidssl.data.synthetic_ucf101`). Load it back with the
``ucf101`` dataset (``root=OUT/videos``), also after ``vidssl prepare OUT/videos DST``.
"""

from __future__ import annotations

import argparse

from vidssl.data.synthetic import SyntheticConfig, write_synthetic
from vidssl.data.synthetic_ucf101 import write_synthetic_ucf101

# --layout name -> writer(out, cfg, progress) (numpy only at import; PyAV is imported on writing)
WRITERS = {"folders": write_synthetic, "ucf101": write_synthetic_ucf101}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (created)")
    parser.add_argument("--videos", type=int, default=200, help="number of videos (default 200)")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--motions", type=int, default=8, help="motion classes, 1-8 (default 8)")
    parser.add_argument(
        "--appearances", type=int, default=4, help="appearance classes, 1-6 (default 4)"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.25, help="share of videos in test (default 0.25)"
    )
    parser.add_argument(
        "--upright",
        action="store_true",
        help="light from above: a canonical 'up', so that rotated clips are recognisable",
    )
    parser.add_argument(
        "--layout",
        choices=sorted(WRITERS),
        default="folders",
        help="folders: <train|test>/<motion>/ + labels.csv (both label sets, default); "
        "ucf101: videos/<motion>/v_*.mp4 + ucfTrainTestlist/ (motion labels only)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = SyntheticConfig(
        num_videos=args.videos,
        frames=args.frames,
        size=args.size,
        num_motions=args.motions,
        num_appearances=args.appearances,
        test_fraction=args.test_fraction,
        seed=args.seed,
        upright=args.upright,
    )
    out = WRITERS[args.layout](args.out, cfg, not args.no_progress)
    print(f"wrote {cfg.num_videos} videos ({cfg.num_test} test) to {out}")
    return 0
