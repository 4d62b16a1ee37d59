"""The listening-test widget driven from Python at the comm boundary (what anywidget delivers)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from test_listening import make_runs

from jmoshi_nb.core.audio import SAMPLE_RATE
from jmoshi_nb.notebook.widgets import ListeningWidget
from jmoshi_nb.research.listening import ListeningTest

WIDGETS = Path(__file__).resolve().parents[1] / "jmoshi_nb" / "notebook" / "widgets"


class Browser:
    """Captures what the kernel sends to the browser."""

    def __init__(self, widget: ListeningWidget) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        widget.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))  # type: ignore[method-assign]

    def clips(self) -> list[bytes]:
        content, buffers = self.sent[-1]
        assert content["type"] == "clips" and content["n"] == len(buffers)
        return buffers


@pytest.fixture()
def test_setup(tmp_path: Path) -> ListeningTest:
    root = make_runs(tmp_path / "runs", {"calm": 0.1, "wild": 0.2}, {"q1": 1.0})
    return ListeningTest.create(root, tmp_path / "ratings.csv", ab=True, seed=1)


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def test_a_rater_goes_through_every_trial_and_each_answer_is_on_disk(test_setup: ListeningTest) -> None:
    w = ListeningWidget(test_setup)
    browser = Browser(w)
    assert w.trial == {} and not w.finished
    w.rater = "Aiko"  # what the browser's name box does
    assert w.trial["kind"] == "mos" and (w.trial["index"], w.trial["total"]) == (1, 3)
    (wav,) = browser.clips()
    data, rate = sf.read(io.BytesIO(wav))
    assert rate == SAMPLE_RATE and data.shape == (SAMPLE_RATE, 2)
    first = w.trial["id"]
    w._on_custom(w, {"type": "rate", "trial": first, "naturalness": 5, "meaningfulness": "2"}, [])
    assert rows(test_setup.ratings)[-1]["naturalness"] == "5" and rows(test_setup.ratings)[-1]["meaningfulness"] == "2"
    # a double click on the old trial is refused, and nothing is written
    w._on_custom(w, {"type": "rate", "trial": first, "naturalness": 1, "meaningfulness": 1}, [])
    assert "already answered" in w.error and len(rows(test_setup.ratings)) == 1
    # an out-of-scale answer is refused with the reason
    w.rate(9, 3)
    assert "1-5" in w.error and len(rows(test_setup.ratings)) == 1
    w.rate(3, 3)
    assert w.trial["kind"] == "ab" and len(browser.clips()) == 2
    n_sent = len(browser.sent)
    w._on_custom(w, {"type": "ready"}, [])  # a new view (page reload) gets the clips again
    assert len(browser.sent) == n_sent + 1 and len(browser.clips()) == 2
    w.prefer("A")
    assert w.finished and w.trial == {} and w.answered == 3
    last = rows(test_setup.ratings)[-1]
    assert last["kind"] == "ab" and last["choice"] == "A" and {last["system_a"], last["system_b"]} == {"calm", "wild"}
    # blind: nothing sent to the browser names a system
    shown = json.dumps([c for c, _ in browser.sent]) + json.dumps(w.trial)
    assert "calm" not in shown and "wild" not in shown


def test_a_rater_who_comes_back_resumes_where_they_stopped(test_setup: ListeningTest) -> None:
    w = ListeningWidget(test_setup, rater="Ben")
    Browser(w)
    w.rate(4, 4)
    done_id = rows(test_setup.ratings)[0]["trial"]
    again = ListeningWidget(test_setup)  # the tab was closed and the notebook re-run
    Browser(again)
    again.rater = "Ben"
    assert again.answered == 1 and again.trial["index"] == 2 and again.trial["id"] != done_id
    other = ListeningWidget(test_setup, rater="Chika")
    assert other.answered == 0 and other.trial["index"] == 1


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_esm_parses() -> None:
    res = subprocess.run(["node", "--check", str(WIDGETS / "listening.js")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    w = ListeningWidget(ListeningTest.__new__(ListeningTest))
    assert 'type: "rate"' in w._esm and 'type: "prefer"' in w._esm and ".jmoshi-listen" in w._css
