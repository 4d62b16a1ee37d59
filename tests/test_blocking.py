"""run_blocking: one way to run the kit's coroutines from scripts, threads and notebook cells."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jmoshi_nb.core.blocking import loop_running_here, run_blocking


async def answer(value: int, delay: float = 0.01) -> int:
    await asyncio.sleep(delay)
    return value


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("bad input named here")


def test_from_plain_code() -> None:
    assert not loop_running_here()
    assert run_blocking(answer(3)) == 3


async def test_from_inside_a_running_loop_as_in_a_notebook_cell() -> None:
    assert loop_running_here()
    with pytest.raises(RuntimeError, match="running event loop"):  # what a cell got before
        asyncio.run(answer(1))
    assert run_blocking(answer(4)) == 4
    with pytest.raises(ValueError, match="bad input named here"):
        run_blocking(fail())


def test_from_a_thread() -> None:
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(run_blocking(answer(5))))
    thread.start()
    thread.join(10)
    assert out == [5]


def test_an_interrupted_wait_cancels_the_coroutine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jupyter's interrupt raises KeyboardInterrupt in the waiting thread: the work is cancelled.

    The interrupt is raised where Ctrl-C or Jupyter's interrupt button lands it: in the waiting
    thread's short wait, once the coroutine runs (the test takes the worker-thread path from plain
    code, as a cell does). Raised there directly rather than sent as a signal with
    ``_thread.interrupt_main``: a signal can be taken by whatever runs in the main thread at that
    instant (a finalizer swallows it), which made the test fail once in a full run on a loaded machine.
    """
    import jmoshi_nb.core.blocking as blocking

    monkeypatch.setattr(blocking, "loop_running_here", lambda: True)
    cancelled = threading.Event()
    started = threading.Event()
    interrupts: list[float] = []

    class InterruptibleEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            if timeout is not None and started.is_set() and not interrupts:
                interrupts.append(timeout)
                raise KeyboardInterrupt  # the user interrupts the cell while it waits
            return super().wait(timeout)

    async def long_job() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(blocking.threading, "Event", InterruptibleEvent)
    with pytest.raises(KeyboardInterrupt):
        run_blocking(long_job())
    assert interrupts and cancelled.is_set()
