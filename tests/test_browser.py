"""The search page in real headless Chromium (marked `browser`; skipped where Chromium is missing).

Install Chromium with `apt-get install chromium`, run with `pytest -m browser`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

import lsr
from lsr.index import build_index, open_index

from conftest import SCIFACT

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    d = tmp_path_factory.mktemp("browser")
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        (d / "corpus.jsonl").write_text("".join(next(f) for _ in range(60)), encoding="utf-8")
    ix = build_index(d / "corpus.jsonl", d / "ix", encoder=lsr.load_encoder("splade-tiny"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "lsr")
    proc = subprocess.Popen([exe, "serve", "--index", str(ix), "--port", str(port), "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    yield url, ix, d
    proc.terminate()
    proc.wait(timeout=30)


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_page_searches_and_shows_expansion(server, tmp_path):
    url, ix, _ = server
    query = "vitamin d deficiency"
    res = chromium("--dump-dom", f"{url}/?q={query.replace(' ', '%20')}", profile=tmp_path / "p1")
    dom = res.stdout
    assert 'class="hit"' in dom, res.stderr[-2000:]
    want = open_index(ix).search([query], k=10)[0]
    # the first hit shown is the engine's first hit, with its score
    first_title = open_index(ix).document(int(want.docs[0]))["title"]
    assert first_title[:40].replace("&", "&amp;") in dom
    assert f"{want.scores[0]:.3f}" in dom
    assert 'class="term"' in dom and "vitamin" in dom  # the expansion terms
    shot = tmp_path / "page.png"
    chromium(
        f"--screenshot={shot}",
        "--window-size=1000,900",
        f"{url}/?q={query.replace(' ', '%20')}",
        profile=tmp_path / "p2",
    )
    assert shot.exists() and shot.stat().st_size > 10_000
