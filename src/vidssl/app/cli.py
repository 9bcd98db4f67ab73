"""`vidssl` command line: one sub-command per module, chosen by name from a plain dict.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported lazily so that ``vidssl scan`` does not pay for importing the training stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vidssl import __version__

# command name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("vidssl.app.scan", "pre-flight check: probe every video under a folder"),
    "prepare": ("vidssl.app.prepare", "decode videos once into fast frame storage"),
    "synth": ("vidssl.app.synth", "write the built-in synthetic dataset as video files"),
    "pretrain": ("vidssl.app.pretrain", "self-supervised pretraining"),
    "demo": ("vidssl.app.demo", "the main job on the built-in synthetic set: pretrain, evaluate, report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidssl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vidssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not built yet in this checkout
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI. ``argv`` excludes the program name; tests call ``main([...])``."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
