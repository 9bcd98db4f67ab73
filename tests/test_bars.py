"""vidssl.bars: every progress bar of vidssl runs without tqdm's monitor thread."""

import ast
import threading
from pathlib import Path

from vidssl.app.progress import progress
from vidssl.bars import ProgressBar

SRC = Path(__file__).resolve().parents[1] / "src" / "vidssl"


def test_bars_start_no_thread_even_when_left_open():
    before = set(threading.enumerate())
    for _ in ProgressBar(range(3), desc="closed"):
        pass
    left_open = progress(total=5, desc="left open")  # as after an exception in a loop
    left_open.update(2)
    started = set(threading.enumerate()) - before
    assert ProgressBar.monitor is None and not started, started
    left_open.close()


def test_no_module_uses_tqdm_directly():
    users = []
    for path in SRC.rglob("*.py"):
        if path.name == "bars.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "tqdm" for n in names):
                users.append(str(path.relative_to(SRC)))
    assert users == []
