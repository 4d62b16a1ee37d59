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

    (ipykernel raises it directly; an asyncio runner in this thread would only cancel its own task,
    so the test takes the worker-thread path from plain code, as a cell does.)
    """
    import jmoshi_nb.core.blocking as blocking

    monkeypatch.setattr(blocking, "loop_running_here", lambda: True)
    cancelled = threading.Event()
    started = threading.Event()

    async def long_job() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt_soon() -> None:
        started.wait(5)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_blocking(long_job())
    assert cancelled.is_set()
