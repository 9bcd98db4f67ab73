"""``vidssl demo``: the main job on the built-in synthetic set, start to finish (``make demo``).

    vidssl demo --out runs/demo          # about 10 min on 2 CPU cores
    vidssl demo --out /tmp/demo --quick  # tiny sizes, a few steps: a smoke test

1. pre-train :data:`DEMO_METHOD` on the synthetic set (``vidssl pretrain``, in this process;
   a rerun after an interruption resumes from ``OUT/last.pt``);
2. evaluate the checkpoint on frozen features: retrieval and a linear probe, for the motion
   labels (visible only across frames) and the appearance labels (visible in one frame)
   (:func:`vidssl.app.evaluate.evaluate` -> ``OUT/eval/``);
3. evaluate the same backbone untrained (random init, ``OUT/baseline/eval/``) for comparison;
4. ``vidssl report OUT`` -> ``OUT/report.html`` (training curves, tables, retrieval examples,
   embedding maps, Grad-CAM), and print a short results table (also ``OUT/summary.md``).

The settings are the constants below; ``OUT/config.yaml`` is the resolved run config. The
pre-training is SimCLR on two clips of one video (random temporal gap): the positives share
the object's shape, colour and motion while its position and time differ. The augmentation is
milder than SimCLR's and never flips: a horizontal flip turns "moving left" into "moving
right" (and clockwise into counter-clockwise), so flipping one view teaches the network to
ignore the motion labels. Measured on this set (250 steps, shared 2-core CPU): with SimCLR's
default augmentation (flips, colour jitter 1.0, crops of 30-100 %) both SimCLR and CVRL
stayed at the chance loss log(2N - 1) and their motion retrieval fell below the random
network's; with the augmentation below SimCLR reached motion R@1 35 % vs 21 % (random init)
and appearance R@1 82 % vs 48 %, while CVRL (4-layer head, decreasing gap distribution)
stayed near chance, so the demo uses SimCLR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from vidssl.app.bench import deep_merge, read_throughput
from vidssl.app.bench_table import Row, bench_table
from vidssl.app.train.checkpoint import CHECKPOINT_NAME
from vidssl.app.train.logging import METRICS_NAME
from vidssl.app.train.threads import auto_threads
from vidssl.eval.stats import EvalResult, to_markdown

DEMO_METHOD = "simclr"
# the pre-training run: sections of a `vidssl pretrain` config (see vidssl.config)
DEMO_CONFIG: dict[str, Any] = {
    "data": {
        "dataset": "synthetic",
        # 384 train / 128 test videos: 8 motion x 4 appearance classes
        "args": {"num_videos": 512, "frames": 32, "size": 64},
        "clip_len": 8,
        "stride": 1.0,
        "size": 32,
        # label-preserving augmentation (see the module docstring): no flips, milder colour
        # jitter and crops that keep at least half of the frame
        "recipe": {"p_flip": 0.0, "jitter_strength": 0.5, "scale": [0.5, 1.0]},
        "batch_size": 32,
        # one loader process: clip transforms run single-threaded there; in the training
        # process they would use torch's intra-op threads, which is many times slower on a
        # busy 2-core machine
        "workers": 1,
    },
    "model": {"backbone": "r3d_18", "width": 0.25},
    "method": {"name": DEMO_METHOD, "temperature": 0.1, "hidden_dim": 256, "out_dim": 128},
    # CSTP appendix (every contrastive framework): momentum SGD, cosine decay, wd 5e-4
    "optim": {
        "name": "sgd",
        "lr": 0.05,
        "min_lr": 1e-5,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "warmup_epochs": 1,
    },
    "train": {
        "max_steps": 1000,  # 83 epochs of the 384 training videos
        "amp": "auto",  # bf16 autocast + channels_last_3d on CPU
        "channels_last": True,
        "log_every": 10,
        "ckpt_every": 50,
    },
}
# --quick: the same pipeline at toy sizes (tests)
QUICK_OVERRIDES: dict[str, Any] = {
    "data": {"args": {"num_videos": 32, "frames": 16, "size": 32}, "clip_len": 4, "size": 16,
             "batch_size": 4, "workers": 0},
    "model": {"width": 0.125},
    "method": {"hidden_dim": 32, "out_dim": 16},
    "optim": {"warmup_epochs": 0},
    "train": {"max_steps": 3, "log_every": 1},
}  # fmt: skip
# vidssl.app.evaluate.EvalConfig fields
DEMO_EVAL: dict[str, Any] = {
    "num_clips": 5,
    "batch_size": 16,
    "workers": 1,
    "ks": [1, 5, 10],
    "linear_epochs": 100,
    "num_examples": 4,
}
QUICK_EVAL: dict[str, Any] = {
    "num_clips": 2,
    "workers": 0,
    "batch_size": 8,
    "ks": [1, 5],
    "linear_epochs": 5,
    "linear_batch_size": 8,
    "num_examples": 2,
    "example_frames": 2,
}
DEMO_PROTOCOLS = ("retrieval", "linear")  # names in vidssl.eval.protocols.PROTOCOLS
STATE_NAME = "demo.json"  # which variant (full / quick) the folder holds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and a few steps (a smoke test)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (default 0: the cores the loader process leaves)",
    )


def demo_settings(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pretrain config sections, EvalConfig fields) of the full or the quick demo."""
    if quick:
        return deep_merge(DEMO_CONFIG, QUICK_OVERRIDES), {**DEMO_EVAL, **QUICK_EVAL}
    return deep_merge(DEMO_CONFIG, {}), dict(DEMO_EVAL)


def _stage(number: int, text: str, start: float) -> None:
    elapsed = (time.perf_counter() - start) / 60
    print(f"\nvidssl demo [{number}/4] {text} (at {elapsed:.1f} min)", flush=True)


def _check_folder(out: Path, quick: bool) -> None:
    """A folder that holds the other variant's run cannot be resumed: say so."""
    state = out / STATE_NAME
    if state.is_file():
        held = json.loads(state.read_text()).get("quick")
        if held != quick:
            variant = "--quick" if held else "full"
            raise ValueError(f"--out {out} holds a {variant} demo run; use another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"quick": quick, "method": DEMO_METHOD}) + "\n")


def pretrain(out: Path, sections: dict[str, Any]) -> tuple[int, float]:
    """``vidssl pretrain --config OUT/demo.yaml --resume auto``; (exit code, wall seconds)."""
    import yaml

    from vidssl.app.cli import main

    sections = deep_merge(sections, {"train": {"out_dir": str(out)}})
    path = out / "demo.yaml"
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    start = time.perf_counter()
    code = main(["pretrain", "--config", str(path), "--resume", "auto"])
    return code, time.perf_counter() - start


def evaluate_both(
    out: Path, sections: dict[str, Any], eval_fields: dict[str, Any]
) -> tuple[list[EvalResult], list[EvalResult]]:
    """(pre-trained results -> OUT/eval, random-init results -> OUT/baseline/eval)."""
    from vidssl.app.evaluate import eval_config_from_dict, evaluate

    data = sections["data"]
    common: dict[str, Any] = {
        "protocols": DEMO_PROTOCOLS,
        "dataset": data["dataset"],
        "dataset_args": dict(data["args"]),
        "split": 1,
        "seeds": 1,
    }
    cfg = eval_config_from_dict(eval_fields, "demo eval")
    trained = evaluate(str(out / CHECKPOINT_NAME), out_dir=out, eval_cfg=cfg, **common)
    clip = {"clip_len": data["clip_len"], "stride": data["stride"], "size": data["size"]}
    random = evaluate(
        "random",
        out_dir=out / "baseline",
        eval_cfg=dataclasses.replace(cfg, **clip),
        backbone=sections["model"]["backbone"],
        width=sections["model"]["width"],
        **common,
    )
    return trained, random


def summary_rows(
    sections: dict[str, Any], trained: list[EvalResult], random: list[EvalResult]
) -> list[Row]:
    """The two rows of the demo's table: random init, then the pre-trained network."""
    model = sections["model"]
    backbone = f"{model['backbone']} ×{model['width']:g}"
    return [
        Row("random init", backbone, results=random, seeds=1),
        Row(f"{DEMO_METHOD} (pre-trained)", backbone, results=trained, seeds=1),
    ]


def run(args: argparse.Namespace) -> int:
    import torch

    threads_before = torch.get_num_threads()
    threads = auto_threads(args.threads, DEMO_CONFIG["data"]["workers"])
    torch.set_num_threads(threads)
    try:
        return run_demo(args.out, args.quick, threads)
    finally:
        torch.set_num_threads(threads_before)


def run_demo(out: Path, quick: bool, threads: int = 0) -> int:
    """The four stages (see the module docstring); returns the exit code. ``threads``: the
    training process's torch threads (``train.threads``; 0 = the trainer's automatic choice)."""
    from vidssl.app.cli import main

    start = time.perf_counter()
    sections, eval_fields = demo_settings(quick)
    if threads:
        sections = deep_merge(sections, {"train": {"threads": threads}})
    try:
        _check_folder(out, quick)
    except ValueError as err:
        print(f"vidssl demo: {err}", file=sys.stderr)
        return 2
    steps = sections["train"]["max_steps"]
    _stage(1, f"pre-training {DEMO_METHOD} for {steps} steps -> {out}", start)
    code, train_s = pretrain(out, sections)
    if code != 0:
        print(
            f"vidssl demo: pre-training failed (exit code {code}); rerun to resume", file=sys.stderr
        )
        return code
    _stage(2, "evaluating the pre-trained and a randomly initialised backbone", start)
    trained, random = evaluate_both(out, sections, eval_fields)
    _stage(3, "writing the report", start)
    if main(["report", str(out)]) != 0:
        return 1
    _stage(4, "results", start)
    clips_per_s, steps_done = read_throughput(out / METRICS_NAME)
    table = bench_table(summary_rows(sections, trained, random), DEMO_PROTOCOLS, resources=False)
    text = to_markdown(table)
    rate = f", median {clips_per_s:.0f} clips/s" if clips_per_s else ""
    training = f"{steps_done} steps; this invocation trained for {train_s / 60:.1f} min{rate}"
    (out / "summary.md").write_text(
        f"# vidssl demo\n\n{DEMO_METHOD} pre-trained on the synthetic set ({training}); "
        "frozen-feature evaluation (%) next to the same backbone untrained.\n\n" + text
    )
    print(f"pre-training: {training}")
    print(text)
    minutes = (time.perf_counter() - start) / 60
    print(f"vidssl demo: done in {minutes:.1f} min")
    print(f"vidssl demo: report {(out / 'report.html').resolve()}")
    return 0
