"""What every report and benchmark record says about where it ran: CPU, git commit, versions, threads."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the source tree (editable installs)


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), or what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_commit(cwd: str | None = None) -> str:
    """The commit checked out in ``cwd`` (default: the lsr source tree; "" outside git)."""
    cwd = cwd or REPO
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd
    ).stdout.strip()


def package_version(pkg: str) -> str | None:
    """The installed version of ``pkg`` (None when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def environment(threads: int) -> dict[str, Any]:
    """Where a report was made: git commit (and whether the tree was dirty), package versions,
    Python, CPU, thread counts (``threads``: the batch search's), platform."""
    from lsr.eval.cache import torch_threads

    try:
        commit = git_commit() or None
    except Exception:
        commit = None
    dirty = None
    if commit:
        st = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=REPO
        )
        dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
    try:
        import numba

        numba_threads = int(numba.config.NUMBA_NUM_THREADS)
    except Exception:  # pragma: no cover
        numba_threads = None
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {
            p: package_version(p)
            for p in ("lsr", "torch", "numba", "numpy", "ranx", "bm25s", "ir_datasets", "transformers")
        },
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": {"search_batch": threads, "torch": torch_threads(), "numba": numba_threads},
        "platform": platform.platform(),
    }
