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


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (from ``/proc``), parents first.

    Why not the process group: ``bentoml serve`` starts each worker in a session of its
    own, so ``killpg`` on the server's group reaches the arbiter only, and a worker whose
    arbiter was SIGKILLed goes on serving (seen: it kept answering ``/readyz``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the task ended meanwhile
                pass
    return out


def worker_pids(pid: int) -> list[int]:
    """The BentoML worker processes of the server whose arbiter is ``pid``."""
    found = []
    for p in process_tree(pid)[1:]:
        try:
            if b"_bentoml_impl.worker" in Path(f"/proc/{p}/cmdline").read_bytes():
                found.append(p)
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    """Resident memory of one process (``VmRSS`` in ``/proc/<pid>/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def kill_tree(pid: int) -> list[int]:
    """SIGKILL the server and every process under it, all at once (as a crash would);
    returns the process ids killed."""
    pids = process_tree(pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's group (the arbiter stops its workers), SIGKILL to the whole
    tree if it has not exited within 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait(timeout=20)


class Server:
    """A server process in its own session; ``stop`` ends its workers too."""

    def __init__(self, cmd: list[str], env: dict[str, str], probe: str, log: Path, cwd: Path = REPO):
        self.log = log
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_ready(probe, self.proc, log)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc)


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bandit.cli", "serve", "--port", str(port)]
