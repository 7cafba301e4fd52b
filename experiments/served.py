"""A real ``offer-bandit serve`` process for experiments: start it, wait until ready, stop it.

Used by the demo (traffic over HTTP into the real service) and the service benchmark.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until ``url`` answers below 500; a process that exits first, or a timeout, raises
    with the end of its log."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


class Server:
    """A server process in its own session (so ``stop`` ends its workers too)."""

    def __init__(self, cmd: list[str], env: dict[str, str], probe: str, log: Path):
        self.log = log
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_ready(probe, self.proc, log)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bandit.cli", "serve", "--port", str(port)]
