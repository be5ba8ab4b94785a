"""The search page in real headless Chromium (marked `browser`; skipped where Chromium is missing).

Install Chromium with `apt-get install chromium` (and `chromium-driver` plus the `selenium` package,
in the dev extra, for the tests that measure the page's layout), run with `pytest -m browser`.
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


def _serve(ix) -> tuple[subprocess.Popen, str]:
    """`lsr serve` over ``ix`` on a free loopback port, once /ready answers 200 (bounded wait)."""
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
    return proc, url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    d = tmp_path_factory.mktemp("browser")
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        (d / "corpus.jsonl").write_text("".join(next(f) for _ in range(60)), encoding="utf-8")
    ix = build_index(d / "corpus.jsonl", d / "ix", encoder=lsr.load_encoder("splade-tiny"))
    proc, url = _serve(ix)
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


# -- layout and behaviour, measured in the DOM (selenium + chromedriver driving the same Chromium) ----

# Chromium may reach this machine's loopback only: every host name fails to resolve and every other
# address goes to a dead proxy, so a page that needs a CDN shows it.
OFFLINE = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium under chromedriver, offline; ``browser(url, width)`` loads ``url`` in a
    ``width`` x 900 CSS-pixel viewport."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    driver_exe = shutil.which("chromedriver")
    if driver_exe is None:
        pytest.skip("no chromedriver on PATH (apt-get install chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *OFFLINE,
    ]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_exe), options=opts)

    def load(url: str, width: int = 1280):
        drv.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        drv.get(url)
        return drv

    yield load
    drv.quit()


def _wait(drv, js: str, timeout: float = 60):
    """Poll the page until the JavaScript expression ``js`` is truthy (bounded)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = drv.execute_script("return " + js)
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(
        f"timed out waiting for {js}; page: {drv.execute_script('return document.body.innerText')[:500]}"
    )


LAYOUT = """
const vw = window.innerWidth, vh = window.innerHeight;
const box = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, width: r.width, height: r.height}; };
const go = document.getElementById("go"), gb = go.getBoundingClientRect();
const atGo = document.elementFromPoint(gb.left + gb.width / 2, gb.top + gb.height / 2);
const wide = [...document.body.querySelectorAll("*")].filter((el) => el.getBoundingClientRect().right > vw + 0.5).map((el) => el.tagName + "#" + el.id + "." + el.className);
return {vw, vh, scrollWidth: document.scrollingElement.scrollWidth,
        controls: ["q", "k", "method", "go"].map((id) => [id, box(document.getElementById(id))]),
        goOnTop: atGo === go || go.contains(atGo), wide};
"""


def _check_layout(drv, width: int) -> None:
    m = drv.execute_script(LAYOUT)
    assert m["vw"] == width, m
    assert m["scrollWidth"] <= m["vw"], f"the page scrolls sideways at {width} px: {m}"
    assert not m["wide"], f"elements past the right edge at {width} px: {m['wide']}"
    for name, b in m["controls"]:
        assert b["width"] > 0 and b["height"] > 0, (name, b)
        assert b["left"] >= 0 and b["right"] <= m["vw"] and 0 <= b["top"] < m["vh"], (width, name, b)
    assert m["goOnTop"], "the Search button is covered"


@pytest.mark.parametrize("width", [400, 1280])
def test_page_layout_and_search_button(server, browser, width):
    """At 400 and 1280 px the controls fit the viewport, the page does not scroll sideways, and the
    Search button (visible, not covered) runs a search (at 400 px it was cut off)."""
    url, ix, _ = server
    drv = browser(f"{url}/?q=vitamin%20d%20deficiency%20and%20bone%20fractures", width)
    _wait(drv, "document.querySelectorAll('.hit').length >= 10")
    _check_layout(drv, width)
    q = drv.find_element("id", "q")
    q.clear()
    q.send_keys("blood pressure")
    drv.find_element("id", "go").click()
    _wait(drv, "location.search.includes('blood') && document.querySelectorAll('.hit').length >= 10")
    want = open_index(ix).search(["blood pressure"], k=10)[0]
    shown = drv.execute_script("return [...document.querySelectorAll('.score')].map((e) => e.textContent)")
    assert shown == [f"{s:.3f}" for s in want.scores]
    _check_layout(drv, width)


def test_page_unknown_method_falls_back(server, browser):
    """/?q=zlib&method=bogus searches with the default method and says the requested one is unknown
    (it left the method box blank and showed `unknown method ''`)."""
    url, _, _ = server
    drv = browser(f"{url}/?q=zlib&method=bogus", 400)
    _wait(drv, "document.getElementById('status').textContent.includes('hits in')")
    assert drv.execute_script("return document.getElementById('method').value") == "exact"
    note = drv.find_element("id", "note")
    assert note.is_displayed() and "bogus" in note.text and "exact, maxscore, bmp, seismic" in note.text
    assert "unknown method ''" not in drv.execute_script("return document.body.innerText")
    _check_layout(drv, 400)
    # a known method in the URL is kept
    drv = browser(f"{url}/?q=zlib&method=bmp", 1280)
    _wait(drv, "document.getElementById('status').textContent.includes('(bmp)')")
    assert drv.execute_script("return document.getElementById('method').value") == "bmp"
    assert not drv.find_element("id", "note").is_displayed()


@pytest.fixture(scope="module")
def vector_server(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    from conftest import random_collection, vocab_of

    d = tmp_path_factory.mktemp("browser-vec")
    ix = build_index(random_collection(200, 30, 1), d / "ix", vocab=vocab_of(30))
    proc, url = _serve(ix)
    yield url, ix
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.parametrize("width", [400, 1280])
def test_page_without_encoder_takes_vectors(vector_server, browser, width):
    """On an index without an encoder the page says so, says how to get text queries (--model), and
    takes a JSON query vector (it was a dead end)."""
    url, ix = vector_server
    drv = browser(url + "/", width)
    _wait(drv, "!document.getElementById('note').hidden")
    note = drv.find_element("id", "note").text
    assert "no encoder" in note and "--model" in note
    q = drv.find_element("id", "q")
    q.send_keys('{"t1": 1.0, "t3": 0.5}')
    drv.find_element("id", "go").click()
    _wait(drv, "document.querySelectorAll('.hit').length >= 10")
    want = open_index(ix).search([{"t1": 1.0, "t3": 0.5}], k=10)[0]
    shown = drv.execute_script(
        "return [...document.querySelectorAll('.hit .meta')].map((e) => e.textContent)"
    )
    assert [s.split("id ", 1)[1].split(" ")[0] for s in shown] == want.ids
    _check_layout(drv, width)
    q.clear()
    q.send_keys("plain words")
    drv.find_element("id", "go").click()
    _wait(drv, "document.querySelector('#status .error') !== null")
    assert "JSON" in drv.find_element("id", "status").text


def test_docs_render_offline(server, browser):
    """/docs renders Swagger UI with no network: its assets come from this server (the CDN ones left
    a blank page offline)."""
    url, _, _ = server
    drv = browser(url + "/docs", 1280)
    _wait(drv, "document.querySelectorAll('.swagger-ui .opblock').length >= 5")
    text = drv.execute_script("return document.body.innerText")
    assert "/search/batch" in text and "lsr search" in text
    external = drv.execute_script(
        "return [...document.querySelectorAll('script[src], link[href]')]"
        ".map((e) => e.src || e.href).filter((u) => !u.startsWith(location.origin))"
    )
    assert external == []
