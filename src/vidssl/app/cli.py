"""`vidssl` command line: one sub-command per module, chosen by name from a plain dict.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the module
of the command being run is imported, so ``vidssl scan`` does not pay for the training stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vidssl import __version__
from vidssl.app.malloc import tune_malloc

# command name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("vidssl.app.scan", "pre-flight check: probe every video under a folder"),
    "prepare": ("vidssl.app.prepare", "decode videos once into fast frame storage"),
    "synth": ("vidssl.app.synth", "write the built-in synthetic dataset as video files"),
    "pretrain": ("vidssl.app.pretrain", "self-supervised pretraining"),
    "eval": ("vidssl.app.eval", "evaluate a checkpoint: retrieval, linear probe, kNN, fine-tune"),
    "train-supervised": ("vidssl.app.supervised", "supervised training from scratch (baseline)"),
    "report": ("vidssl.app.report", "write report.html for a run directory"),
    "prompts": ("vidssl.app.prompts", "description template (LLM questions) for a class list"),
    "flow": ("vidssl.app.flow", "compute optical flow for every video into fast storage"),
    "embed": ("vidssl.app.embed", "one embedding per video of a folder / dataset (resumable)"),
    "search": ("vidssl.app.search", "nearest videos of a query in an embedded collection"),
    "export": ("vidssl.app.export", "a checkpoint's backbone for torchvision or ONNX"),
    "bench": ("vidssl.app.bench", "every method on one table: pretrain, evaluate, compare"),
    "demo": (
        "vidssl.app.demo",
        "the main job on the built-in synthetic set: pretrain, evaluate, report",
    ),
}
# commands that train or run models over a dataset: glibc malloc settings first (app/malloc.py)
MODEL_COMMANDS = frozenset({"pretrain", "train-supervised", "eval", "embed", "bench", "demo"})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="vidssl", description="vidssl: self-supervised video representation learning."
    )
    parser.add_argument("--version", action="version", version=f"vidssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI. ``argv`` excludes the program name; tests call ``main([...])``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command in MODEL_COMMANDS:
        tune_malloc()  # before torch allocates; forked DataLoader workers inherit it
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(args_list)
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
