"""glibc malloc settings of the `vidssl` commands (vidssl.app.malloc)."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from vidssl.app import malloc

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
SRC = Path(__file__).resolve().parents[1] / "src"

# Runs the CLI with argv[1:] (a --help: the command's setup, then exit), then reports whether a
# 64 MiB malloc became an mmapped block: mallinfo2().hblks counts them. glibc's default mmap
# threshold is at most 32 MiB, so by default it does; with vidssl's 1 GiB threshold it does not.
PROBE = """
import ctypes, sys
from vidssl.app import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print("MMAPPED_BLOCKS", libc.mallinfo2().hblks - before)
"""


def mmapped_blocks(argv: list[str], **env: str) -> int:
    """New mmapped blocks after one 64 MiB malloc in a fresh process that ran `vidssl argv`."""
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "VIDSSL_MALLOC"))
    }
    child_env.pop("GLIBC_TUNABLES", None)
    child_env.update(env, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("MMAPPED_BLOCKS"))
    return int(line.split()[1])


@pytest.mark.skipif(not ON_GLIBC, reason="glibc only")
def test_training_command_keeps_large_blocks_in_the_heap() -> None:
    # the training command sets the threshold: a 64 MiB block comes from the heap
    assert mmapped_blocks(["pretrain", "--help"]) == 0
    # opted out: glibc's default, the block is mmapped
    assert mmapped_blocks(["pretrain", "--help"], VIDSSL_MALLOC="0") == 1
    # a command that does not train leaves the allocator alone
    assert mmapped_blocks(["scan", "--help"]) == 1


@pytest.mark.skipif(not ON_GLIBC, reason="glibc only")
def test_user_malloc_environment_wins() -> None:
    assert mmapped_blocks(["pretrain", "--help"], MALLOC_MMAP_THRESHOLD_="131072") == 1


def test_enabled_switch() -> None:
    assert malloc.enabled({})
    assert malloc.enabled({"VIDSSL_MALLOC": "1"})
    for off in ("0", "off", "False", "no"):
        assert not malloc.enabled({"VIDSSL_MALLOC": off})
    assert not malloc.enabled({"MALLOC_TRIM_THRESHOLD_": "4294967296"})
    assert not malloc.enabled({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1073741824"})
    assert malloc.enabled({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"})


def test_opt_out_makes_no_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("the C library was looked up although turned off")

    monkeypatch.setattr(malloc, "_glibc", fail)
    assert malloc.tune_malloc({"VIDSSL_MALLOC": "0"}) is False


def test_other_platforms_are_a_logged_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    with caplog.at_level(logging.DEBUG, logger=malloc.__name__):
        assert malloc.tune_malloc({}) is False
    assert "not glibc" in caplog.text


@pytest.mark.skipif(not ON_GLIBC, reason="glibc only")
def test_mallopt_accepts_the_settings() -> None:
    # in a child: mallopt is process-wide; glibc returns 1 for each accepted setting
    code = "from vidssl.app.malloc import tune_malloc; print(tune_malloc({}))"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
