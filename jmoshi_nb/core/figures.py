"""Static figures that show themselves as pictures in Jupyter and draw Japanese text.

The kit's plotting functions build :class:`KitFigure` objects without pyplot, so:

* a figure that is a cell's result, or passed to ``display()``, shows as a PNG picture in
  JupyterLab, VS Code and executed notebooks (nbclient / nbconvert / nbmake), whether or not pyplot
  or ``%matplotlib inline`` is in use (a plain ``Figure`` shows only ``<Figure size ...>`` text);
* nothing is added to pyplot's figure list, and the user's global matplotlib settings are left
  alone: the Japanese font (:func:`jmoshi_nb.core.fonts.japanese_rc`) is in force only while a kit
  figure is built (:func:`japanese_text`) and drawn (``KitFigure.draw``);
* ``fig.savefig("x.pdf")`` works in scripts as with any figure.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import matplotlib
from matplotlib.figure import Figure

from .fonts import japanese_rc

P = ParamSpec("P")
R = TypeVar("R")

DISPLAY_DPI = 100  # CSS pixels per inch of a figure shown in a notebook
DISPLAY_SCALE = 2  # rendered at twice that, shown at its CSS size: sharp on high-density screens


class KitFigure(Figure):
    """A matplotlib Figure with a picture representation for Jupyter and the kit's Japanese font."""

    def draw(self, renderer: Any) -> None:
        with matplotlib.rc_context(japanese_rc()):
            super().draw(renderer)

    def to_png(self, dpi: float = DISPLAY_DPI * DISPLAY_SCALE) -> bytes:
        """The figure as PNG bytes (tight bounding box, white background)."""
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        return buf.getvalue()

    def _repr_png_(self) -> tuple[bytes, dict[str, int]]:
        data = self.to_png()
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
        return data, {"width": width // DISPLAY_SCALE, "height": height // DISPLAY_SCALE}


def japanese_text(build: Callable[P, R]) -> Callable[P, R]:
    """Run a figure-building function with the Japanese font in force (text objects keep the font
    they were created with; tick labels get it when ``KitFigure.draw`` runs)."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(japanese_rc()):
            return build(*args, **kwargs)

    return wrapper


def new_figure(**kwargs: Any) -> KitFigure:
    """A :class:`KitFigure` (``Figure`` keyword arguments, e.g. ``figsize``, ``layout``)."""
    return KitFigure(**kwargs)
