"""The kit's static figures show as pictures in Jupyter, draw Japanese, and leave global state alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from IPython.core.formatters import DisplayFormatter  # noqa: E402
from test_plots import SENTENCE, japanese_texts, make_recording, render, sweep  # noqa: E402

from jmoshi_nb.core.figures import KitFigure  # noqa: E402
from jmoshi_nb.core.fonts import JAPANESE_FONT  # noqa: E402
from jmoshi_nb.research.plots import plot_recording, plot_sweep_heatmap, plot_timeline  # noqa: E402
from jmoshi_nb.research.turn_taking import turn_taking  # noqa: E402

USER_FONT = {"font.family": ["DejaVu Sans"]}  # a user whose default font has no Japanese


def figures() -> dict[str, KitFigure]:
    rec = make_recording()
    return {
        "recording": plot_recording(rec, title="テスト録音"),
        "timeline": plot_timeline(turn_taking(rec), rec),
        "heatmap": plot_sweep_heatmap(sweep(), "応答遅延"),
    }


@pytest.mark.parametrize("name", ["recording", "timeline", "heatmap"])
def test_a_figure_displays_as_a_png_picture(name: str) -> None:
    fig = figures()[name]
    data, metadata = DisplayFormatter().format(fig)
    assert data["image/png"].startswith(b"\x89PNG")
    assert metadata["image/png"]["width"] > 300 and metadata["image/png"]["height"] > 100
    assert "Figure size" in data["text/plain"]  # the text stays as the fallback only


def test_japanese_renders_under_a_user_font_without_japanese() -> None:
    with matplotlib.rc_context(USER_FONT):
        figs = figures()
        for fig in figs.values():
            render(fig)  # missing glyphs (tofu) raise here
            fig._repr_png_()
            assert japanese_texts(fig) and all(t.get_fontname() == JAPANESE_FONT for t in japanese_texts(fig))
        assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]  # the user's setting is untouched
        assert SENTENCE in [t.get_text() for t in japanese_texts(figs["recording"])]


def test_figures_in_executed_code_with_and_without_pyplot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In a fresh interpreter: no pyplot figure list grows, the global font stays, savefig works."""
    script = textwrap.dedent(
        """
        import sys
        import matplotlib
        sys.path.insert(0, sys.argv[1])
        from test_plots import make_recording
        from jmoshi_nb.research.plots import plot_recording
        before = list(matplotlib.rcParams["font.family"])
        fig = plot_recording(make_recording())
        fig.savefig(sys.argv[2])
        import matplotlib.pyplot as plt
        fig2 = plot_recording(make_recording())
        png, meta = fig2._repr_png_()
        assert png.startswith(b"\\x89PNG"), "no PNG"
        assert plt.get_fignums() == [], plt.get_fignums()
        assert list(matplotlib.rcParams["font.family"]) == before, matplotlib.rcParams["font.family"]
        print("ok")
        """
    )
    out = tmp_path / "figure.pdf"
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    result = subprocess.run(
        [sys.executable, "-c", script, tests_dir, str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert out.read_bytes().startswith(b"%PDF")
