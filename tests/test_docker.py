"""What can be tested of docker/ without a Docker engine: the Dockerfile's commands, the compose
file, and the entrypoint script run directly."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time

import httpx
import pytest

from lsr.index import build_index

from conftest import REPO, random_collection, vocab_of

DOCKER = REPO / "docker"


def instructions():
    lines, cur = [], ""
    for raw in (DOCKER / "Dockerfile").read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        cur += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(cur.strip())
            cur = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_commands():
    ins = instructions()
    kinds = [k for k, _ in ins]
    assert kinds[0] == "FROM"
    for k, arg in ins:
        if k == "COPY":
            src = shlex.split(arg)[:-1]
            for s in src:
                assert (REPO / s).exists(), f"COPY source {s} is not in the repo"
        if k == "RUN" and "pip install" in arg and "torch" in arg:
            assert "torch==2.13.0" in arg and "/whl/cpu" in arg, "torch must be the pinned CPU build"
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert any(k == "EXPOSE" and "8000" in a for k, a in ins)
    assert any(k == "HEALTHCHECK" and "/ready" in a for k, a in ins)
    entry = [a for k, a in ins if k == "ENTRYPOINT"][-1]
    assert "lsr-entrypoint" in entry
    # every `lsr` subcommand the image runs exists
    from lsr.cli.main import COMMANDS

    for k, arg in ins:
        if k == "RUN" and arg.startswith("lsr "):
            assert arg.split()[1] in COMMANDS


def test_compose_file():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    svc = spec["services"]["lsr"]
    assert (
        svc["build"]["dockerfile"] == "docker/Dockerfile"
        and (DOCKER / svc["build"]["context"]).resolve() == REPO
    )
    assert "8000:8000" in svc["ports"]


def test_entrypoint_needs_an_index():
    env = {k: v for k, v in os.environ.items() if k != "LSR_INDEX"}
    res = subprocess.run(["sh", str(DOCKER / "entrypoint.sh")], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "LSR_INDEX" in res.stderr


@pytest.mark.system  # the docker entrypoint serving
def test_entrypoint_serves(tmp_path):
    ix = build_index(random_collection(100, 20, 3), tmp_path / "ix", vocab=vocab_of(20))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        LSR_INDEX=str(ix),
        LSR_HOST="127.0.0.1",
        LSR_PORT=str(port),
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    )
    proc = subprocess.Popen(["sh", str(DOCKER / "entrypoint.sh"), "--log-level", "warning"], env=env)
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
            assert proc.poll() is None
        r = httpx.post(
            f"http://127.0.0.1:{port}/search", json={"query": {"vector": {"t1": 1}}, "k": 2}, timeout=10
        )
        assert r.status_code == 200 and len(r.json()["hits"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
