"""The service over a real socket: uvicorn on loopback, raw sockets and httpx (what TestClient
cannot show: chunked bodies, connection resets, Expect: 100-continue, percent-decoding by the server)."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import quote

import httpx
import pytest
import uvicorn

from lsr.index import build_index
from lsr.service.app import create_app
from lsr.service.settings import Settings

from conftest import random_collection, vocab_of

IDS = ["a/b", "a/b/c", "/lead", "50%", "%2F", "%", "with space", "naïve", "日本/語", "q?x#y", "plain"]
LIMIT = 1_000_000  # the default LSR_MAX_BODY_BYTES


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn in a thread on a free loopback port, serving a small vector index with odd ids."""
    d = tmp_path_factory.mktemp("wire")
    ix = build_index(random_collection(len(IDS), 20, 5, density=0.3), d / "ix", vocab=vocab_of(20), ids=IDS)
    app = create_app(Settings(index=ix, warmup=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):  # bounded: 20 s
        if srv.started:
            break
        time.sleep(0.1)
    else:
        pytest.fail("uvicorn did not start")
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(timeout=10)


def _request(host: str, port: int, head: str, body_chunks=(), pause: float = 0.0) -> bytes:
    """Send ``head`` (request line + headers), wait ``pause`` seconds, send the body chunks, then
    read the whole response (bounded by a 20 s timeout). Raises on a connection reset."""
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(head.encode("latin-1"))
        time.sleep(pause)
        for chunk in body_chunks:
            s.sendall(chunk)
        out = b""
        while b"\r\n\r\n" not in out or len(out) < out.index(b"\r\n\r\n") + 4 + _length(out):
            data = s.recv(65536)
            if not data:
                break
            out += data
        return out


def _length(resp: bytes) -> int:
    for line in resp.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def test_chunked_body_over_limit_is_413(server):
    """10 MB sent with chunked transfer: 413 (was 400 "There was an error parsing the body")."""
    host, port = server

    def chunks():
        for _ in range(160):
            yield b"x" * 65536  # 10 MiB in all

    r = httpx.post(
        f"http://{host}:{port}/search",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


@pytest.mark.parametrize("extra", ["Connection: close\r\n", ""])
def test_large_body_with_content_length_is_read_before_the_413(server, extra):
    """A 2 MB body with Content-Length, whose sender is slow to start: the server reads and discards
    it, then answers 413, so the client reads the status (it used to answer at once and, with
    Connection: close, close the socket: the client, still sending, got a broken pipe)."""
    host, port = server
    n = 2_000_000
    head = (
        f"POST /search HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {n}\r\n\r\n"
    )
    resp = _request(host, port, head, [b" " * 65536] * (n // 65536) + [b" " * (n % 65536)], pause=0.5)
    assert _status(resp) == 413, resp[:300]
    assert b"larger than 1000000 bytes" in resp


def test_expect_continue_and_huge_bodies_are_answered_at_once(server):
    """With Expect: 100-continue (the client waits), or a body past LSR_MAX_DRAIN_BYTES, the 413
    comes before the body, and the connection closes."""
    host, port = server
    for extra, n in (("Expect: 100-continue\r\n", 2_000_000), ("", 10**9)):
        head = (
            f"POST /search HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {n}\r\n\r\n"
        )
        resp = _request(host, port, head)
        assert _status(resp) == 413 and b"connection: close" in resp.lower(), resp[:300]


def test_body_under_limit_still_works_and_keeps_the_connection(server):
    host, port = server
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as c:
        r = c.post("/search", json={"query": {"vector": {"t1": 1.0, "t2": 0.5}}, "k": 3})
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
        # a small chunked body is read whole and answered
        raw = b'{"query": {"vector": {"t1": 1.0}}, "k": 2}'
        r = c.post(
            "/search", content=iter([raw[:10], raw[10:]]), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
        # a drained 413 keeps the connection usable
        assert c.post("/search", content=b" " * (LIMIT + 10)).status_code == 413
        assert c.post("/search", json={"query": {"vector": {"t1": 1.0}}, "k": 2}).status_code == 200


@pytest.mark.parametrize("body", [b'{"query": "\xff\xfe"}', b"\xc3\x28", '{"query": "é"}'.encode("latin-1")])
def test_non_utf8_body_is_422(server, body):
    """JSON is UTF-8: anything else is a 422, as the README says (was a 400)."""
    host, port = server
    r = httpx.post(
        f"http://{host}:{port}/search", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"], r.text


def test_document_ids_over_http(server):
    """Ids with /, %, spaces and Unicode, percent-encoded, as a real client sends them."""
    host, port = server
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as c:
        for doc_id in IDS:
            r = c.get("/documents/" + quote(doc_id, safe=""))
            assert r.status_code == 200 and r.json()["id"] == doc_id, (doc_id, r.text)
        # unencoded slashes reach the id too
        assert c.get("/documents/a/b/c").json()["id"] == "a/b/c"
        assert c.get("/documents/" + quote("no/such", safe="")).status_code == 404
