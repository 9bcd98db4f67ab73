r"""Does a bench row's network stay alive? A short pretrain of one row, then its features.

A probe of training health, not of speed. For each ``--variant`` (config overrides, as on the
``vidssl pretrain`` command line; ``-`` = the row as the preset has it) it trains the
preset's row ``--row`` (seed ``--seed``) for ``--steps`` steps through ``vidssl pretrain``
in a scratch folder, then feeds ``--clips`` random clips through the trained backbone (eval
mode) and prints the mean over feature dimensions of the std over clips (0 = the same feature
for every input: a collapsed network), the share of exact zeros (dead ReLUs after the last
block) and the pretext heads' last logged training accuracies.

    SGD="optim.name=sgd optim.weight_decay=5e-4"   # the preset's shared optimiser
    python benchmarks/probe_collapse.py --row mtcl --steps 60 --variant \
        "$SGD optim.lr=0.05" "$SGD optim.lr=0.05 optim.grad_clip=1.0" "$SGD optim.lr=0.005" -

The MTCL row with the CPU preset's shared momentum SGD (lr 0.05, warm-up 1 epoch, default
stem), with gradient clipping, with a 10x smaller lr, and as the preset now has it (Adam, lr
1e-3, weight decay 1e-4). Figures: docs/benchmarks.md, "Joint pretext rows".
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from vidssl.app.bench import load_preset, make_bench, plan_cells, preset_path
from vidssl.app.cli import main as vidssl_main
from vidssl.app.train.checkpoint import CHECKPOINT_NAME
from vidssl.config import save_config
from vidssl.eval.weights import read_weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", help="shipped bench preset (default cpu)")
    p.add_argument("--row", required=True, help="a row of the preset (method or variant name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=60, help="training steps per variant")
    p.add_argument("--clips", type=int, default=32, help="random clips fed to the backbone")
    p.add_argument(
        "--variant",
        nargs="+",
        default=["-"],
        help="each: space-separated SECTION.FIELD=VALUE overrides, or - for none",
    )
    return p.parse_args(argv)


def probe(config: Path, out: Path, steps: int, overrides: list[str], clips: int) -> dict:
    """Train ``steps`` steps of ``config`` into ``out``; liveness of the result."""
    argv = ["pretrain", "--config", str(config), f"train.out_dir={out}"]
    argv += [f"train.max_steps={steps}", "train.ckpt_every=100000", *overrides]
    if vidssl_main(argv) != 0:
        raise SystemExit(f"vidssl {shlex.join(argv)} failed")
    weights = read_weights(out / CHECKPOINT_NAME)  # one read: the backbone and the run's data
    model, data = weights.build(0), weights.data
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(clips, 3, data["clip_len"], data["size"], data["size"], generator=generator)
    with torch.no_grad():
        feats = model(x)  # (clips, D)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r.get("kind") == "step"][-1]
    return {
        "feature_std": feats.std(dim=0).mean().item(),  # (clips, D) -> (D,) -> scalar
        "zero_share": (feats == 0).float().mean().item(),
        **{k: v for k, v in last.items() if k.startswith("acc_")},
    }


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = load_preset(preset_path(args.preset))
    out = Path("runs/probe-collapse")  # not written to: the bench's cache folder setting
    bench = make_bench(preset, out, methods=[args.row], seeds=args.seed + 1)
    plans = [p for p in plan_cells(bench) if p.cell.row == args.row and p.cell.seed == args.seed]
    if not plans or plans[0].config is None:
        raise SystemExit(f"--row: {args.row!r} is not a trained row of preset {args.preset!r}")
    with tempfile.TemporaryDirectory(prefix="probe-collapse-") as tmp:
        config = Path(tmp) / "config.yaml"
        save_config(plans[0].config, config)
        print(f"row {args.row} of preset {args.preset}, seed {args.seed}, {args.steps} steps")
        for i, variant in enumerate(args.variant):
            overrides = [] if variant.strip() == "-" else shlex.split(variant)
            got = probe(config, Path(tmp) / f"v{i}", args.steps, overrides, args.clips)
            accs = " ".join(f"{k[4:]} {v:.3f}" for k, v in got.items() if k.startswith("acc_"))
            print(
                f"{variant:<60s} feature std {got['feature_std']:.3g}  "
                f"zeros {got['zero_share']:.1%}  {accs}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(run())
