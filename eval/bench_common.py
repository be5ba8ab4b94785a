"""What every benchmark record says about where it ran: CPU model and git commit."""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_commit(cwd: str | None = None) -> str:
    cwd = cwd or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd
    ).stdout.strip()
