"""Progress bars for runs of many jobs (tqdm, imported only when a bar is shown)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Progress:
    """A bar of ``total`` jobs (``enabled=False``: none); ``update()`` per finished job, ``close()`` at the end."""

    def __init__(self, total: int, desc: str, enabled: bool = True, unit: str = "job") -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, *_done: Any) -> None:
        """One more job done (any arguments are ignored, so it can be an ``on_done`` callback)."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(iterable: Iterable[T], total: int, desc: str, enabled: bool = True, unit: str = "job") -> Iterator[T]:
    """``iterable`` with a bar of ``total`` steps while it is consumed (``enabled=False``: as it is)."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit)
