"""Servers the tests talk to in their own processes: a free port, a start that waits until they answer, a stop.

Plain stdlib, so ``tests/browser/harness.py`` (which the browser benchmark imports too) can use it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status in (200, 404, 405):
                    return
        except OSError as exc:
            if getattr(exc, "code", None) in (404, 405, 426):
                return
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate, and kill what is still running after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(args: list[str], health_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The process ``args`` for the with-block, once ``health_url`` answers; its output is shown if it dies first."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_healthy(health_url, proc)
        yield proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def jmoshi_serve(*options: str) -> Iterator[str]:
    """A real ``jmoshi-nb serve OPTIONS`` process on 127.0.0.1 (tiny model unless told); yields its ws:// url."""
    port = free_port()
    args = [sys.executable, "-m", "jmoshi_nb.cli", "serve", "--port", str(port), *options]
    with running(args, f"http://127.0.0.1:{port}/api/health"):
        yield f"ws://127.0.0.1:{port}"
