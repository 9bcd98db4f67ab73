"""``vidssl prompts CLASSES --out FILE``: a description template for a class list.

Writes a JSON file mapping every class to an empty string, plus a ``"_question"`` entry with
the LLM question for each class ("What are useful visual features for distinguishing {class}
in a video?", seed 004 section 3.3). Fill it by hand or with any LLM, then use it as the
``descriptions`` of ``vidssl.text.prompts.class_texts``. Without ``--out`` the questions are
printed, one per line. Nothing is downloaded and no model is called.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "classes",
        metavar="CLASSES",
        help="class list: a text file with one class name per line (or '<index> <name>' lines "
        "as in UCF101 classInd.txt), or a shipped list: ucf101, hmdb51, kinetics400",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON template to write; omit to print questions"
    )
    parser.add_argument(
        "--prefill",
        default=None,
        metavar="DESCRIPTIONS",
        help="fill classes already described in this description set (shipped name or JSON)",
    )
    parser.add_argument(
        "--question",
        default=None,
        help="question template with '{}' for the class name (default: the paper's question)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from vidssl.text.prompts import (
        PROMPT_QUESTION,
        humanize,
        load_class_list,
        load_descriptions,
        write_template,
    )

    question = args.question or PROMPT_QUESTION
    try:
        if "{}" not in question:
            raise ValueError(f"--question must contain '{{}}' for the class name: {question!r}")
        classes = load_class_list(args.classes)
        prefill = load_descriptions(args.prefill) if args.prefill else {}
        if args.out is None:
            for c in classes:
                print(question.format(humanize(c)))
            return 0
        out = write_template(
            classes, args.out, question=question, prefill=prefill, overwrite=args.force
        )
    except (OSError, ValueError) as exc:  # missing/unreadable files, bad lists, existing --out
        print(f"vidssl prompts: error: {exc}", file=sys.stderr)
        return 2
    filled = sum(1 for c in classes if prefill.get(c))
    print(
        f"wrote {out}: {len(classes)} classes, {filled} prefilled, "
        f"{len(classes) - filled} to fill with the answer to its '_question'"
    )
    return 0
