"""Japanese text in matplotlib figures: one place that picks and registers the font.

matplotlib's default font (DejaVu Sans) has no kana or kanji: Japanese would render as empty boxes
("tofu") with a "Glyph ... missing from font(s)" warning. :func:`use_japanese_font` registers
IPAexGothic, the font bundled with the ``matplotlib-fontja`` package (IPA Font License), and makes it
matplotlib's default family, keeping DejaVu Sans as fallback for the rare symbol IPAexGothic lacks.
Without that package it uses a Japanese font installed on the system, and raises if there is none.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

JAPANESE_FONT = "IPAexGothic"
FALLBACK_FONT = "DejaVu Sans"
# Installed system fonts tried, in order, when matplotlib-fontja is missing.
SYSTEM_FONTS = (
    "IPAexGothic",
    "IPAGothic",
    "Noto Sans CJK JP",
    "Noto Sans JP",
    "Source Han Sans JP",
    "Hiragino Sans",
    "Yu Gothic",
    "Meiryo",
    "TakaoGothic",
)


class JapaneseFontError(RuntimeError):
    """No Japanese font is available to matplotlib."""


def bundled_font_path() -> Path | None:
    """The IPAexGothic file shipped by matplotlib-fontja, found without importing it.

    (Importing ``matplotlib_fontja`` changes matplotlib's settings as a side effect.)
    """
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "fonts" / "ipaexg.ttf"
        if path.exists():
            return path
    return None


def _registered(family: str) -> bool:
    from matplotlib import font_manager

    return any(entry.name == family for entry in font_manager.fontManager.ttflist)


def japanese_family() -> str:
    """Register the Japanese font with matplotlib (idempotent) and return its family name."""
    path = bundled_font_path()
    if path is not None:
        if not _registered(JAPANESE_FONT):
            from matplotlib import font_manager

            font_manager.fontManager.addfont(str(path))
        return JAPANESE_FONT
    family = next((name for name in SYSTEM_FONTS if _registered(name)), None)
    if family is None:
        raise JapaneseFontError(
            "no Japanese font for matplotlib: pip install matplotlib-fontja (bundles IPAexGothic), "
            f"or install one of: {', '.join(SYSTEM_FONTS)}"
        )
    return family


def japanese_rc() -> dict[str, list[str]]:
    """matplotlib settings that draw Japanese text: ``with matplotlib.rc_context(japanese_rc()): ...``.

    The kit's own figures use this while they are built and drawn, leaving the global settings alone.
    """
    return {"font.family": [japanese_family(), FALLBACK_FONT]}


def use_japanese_font() -> str:
    """Make a Japanese font matplotlib's global default (idempotent); returns its family name.

    For the user's own pyplot figures; the kit's figures do not need it. Sets
    ``rcParams["font.family"]`` to ``[family, "DejaVu Sans"]``.
    """
    import matplotlib

    rc = japanese_rc()
    matplotlib.rcParams.update(rc)
    return rc["font.family"][0]


def font_file(family: str | None = None) -> Path:
    """The font file matplotlib uses for ``family`` (default: the current default family)."""
    import matplotlib
    from matplotlib import font_manager

    families = [family] if family else list(matplotlib.rcParams["font.family"])
    return Path(font_manager.findfont(font_manager.FontProperties(family=families), fallback_to_default=False))
