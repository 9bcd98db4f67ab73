"""`report.html` and the search page in a real browser (headless Chromium): every image loads
and the page logs no error. Skips where Chromium is not installed (apt-get install chromium)."""

import pytest

from chromium import INSTALL_HINT, check_page, find_chromium
from test_extensions import write_ts
from test_report import _fake_run_dir
from vidssl.app.cli import main

pytestmark = pytest.mark.skipif(find_chromium() is None, reason=INSTALL_HINT)


def test_report_page_loads_every_image_without_errors(tmp_path):
    run = _fake_run_dir(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    check = check_page(run / "report.html")
    assert len(check.images) == 5  # curves, retrieval, 2 embedding maps, Grad-CAM
    assert check.broken_images == [] and check.errors == []


def test_search_page_loads_every_image_without_errors(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    for i in range(4):
        write_ts(src / f"v{i}.ts", frames=8 + 2 * i)
    out = tmp_path / "emb"
    random = ["--checkpoint", "random", "--backbone", "r3d_18", "--width", "0.125"]
    tiny = ["num_clips=1", "clip_len=4", "size=32", "workers=0", "progress=false"]
    assert main(["embed", str(src), "--out", str(out), *random, *tiny]) == 0
    page = tmp_path / "page" / "search.html"
    assert main(["search", str(out), "--query", "0", "--k", "3", "--html", str(page)]) == 0
    check = check_page(page)
    assert len(check.images) == 4  # the query and three neighbours
    assert check.broken_images == [] and check.errors == []


def test_the_checker_sees_a_broken_page(tmp_path):
    """The checks can fail: a missing image and a script error are both reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="missing.png">'
        "<script>console.error('boom')</script></body></html>"
    )
    check = check_page(page)
    assert [i["src"] for i in check.broken_images] == ["missing.png"]
    assert any("boom" in e for e in check.errors)
    assert any("missing.png" in e for e in check.errors)
