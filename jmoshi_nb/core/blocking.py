"""Run a coroutine to completion from blocking code, wherever that code is called.

``asyncio.run`` refuses to run when the calling thread already runs an event loop, which is the
case in every Jupyter cell (ipykernel runs one). The kit's blocking calls (``run_wav``, ``sweep``,
``prompted_continuation``, the benchmark runner) go through :func:`run_blocking`, which works from a
script, from a thread, and from a notebook cell: with a loop running in this thread, the coroutine
runs on a fresh loop in a worker thread while this thread waits. Interrupting the wait (Ctrl-C,
Jupyter's interrupt button) cancels the coroutine, so its ``finally`` blocks and partial saves run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_running_here() -> bool:
    """True when the calling thread runs an asyncio event loop (a Jupyter cell does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result (or raise its exception)."""
    if not loop_running_here():
        return asyncio.run(coro)
    loop = asyncio.new_event_loop()
    outcome: dict[str, Any] = {}
    task_ready = threading.Event()
    finished = threading.Event()  # not Thread.join: an interrupted join can report a live thread as ended

    def worker() -> None:
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(coro)
            outcome["task"] = task
            task_ready.set()
            outcome["result"] = loop.run_until_complete(task)
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc
        finally:
            task_ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                finished.set()

    thread = threading.Thread(target=worker, name="jmoshi-nb-blocking", daemon=True)
    try:
        thread.start()
        while not finished.wait(timeout=0.1):  # short waits keep the waiting thread interruptible
            pass
    except BaseException:
        task_ready.wait()
        task = outcome.get("task")
        if task is not None and not finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to cancel
                loop.call_soon_threadsafe(task.cancel)
        finished.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
