"""Talk-page ratings on disk -> the listening test's DataFrame and MOS ± 95 % CI table, per setting;
the server's recordings go through the analysis tools unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from jmoshi_nb.core.audio import FRAME_SIZE
from jmoshi_nb.core.config import SessionConfig
from jmoshi_nb.core.recording import Recording
from jmoshi_nb.research.listening import COLUMNS
from jmoshi_nb.research.talk_ratings import read_talk_ratings, talk_mos_table
from jmoshi_nb.research.textgrid import save_textgrid
from jmoshi_nb.research.turn_taking import turn_taking
from jmoshi_nb.serve.record import ServerRecorder
from jmoshi_nb.serve.settings import Setting

SCORES = {  # setting -> (naturalness, meaningfulness, overall) per participant
    "calm": [(4, 3, 4), (5, 4, 5), (3, 3, 3)],
    "lively": [(2, 2, 1), (3, 1, 2)],
}


def conversation(recorder: ServerRecorder, participant: str, setting: Setting) -> str:
    """A short recorded conversation (speech in the user channel at 0.5-1.5 s, the model at 2-3 s)."""
    rec = recorder.open(participant, setting.config, {"model": "tiny"}, {"setting": setting.record("balanced")})
    t = np.arange(FRAME_SIZE) / 24000
    for i in range(50):
        user = (0.3 * np.sin(2 * np.pi * 200 * t) if 6 <= i < 19 else np.zeros(FRAME_SIZE)).astype(np.float32)
        model = (0.3 * np.sin(2 * np.pi * 300 * t) if 25 <= i < 38 else np.zeros(FRAME_SIZE)).astype(np.float32)
        rec.add_user(user)
        rec.add_model(model)
        rec.add_metrics({"frame": i, "text_token": 3, "total_ms": 10.0})
        if i == 26:
            rec.add_text(i, 5, "はい")
    folder = rec.streaming_to
    assert folder is not None
    rec.save(folder)
    return rec.meta["conversation"]


def test_ratings_read_and_summarise_per_setting(tmp_path: Path) -> None:
    recorder = ServerRecorder(tmp_path / "rec")
    for i, (name, rows) in enumerate(SCORES.items()):
        setting = Setting(i, f"System {i + 1}", SessionConfig(model="tiny", name=name))
        for k, (nat, mea, ove) in enumerate(rows):
            conv = conversation(recorder, f"{name}-p{k}", setting)
            recorder.save_rating(
                {"conversation": conv, "naturalness": nat, "meaningfulness": mea, "overall": ove, "comment": "良"}
            )
    conversation(recorder, "unrated", Setting(0, "System 1", SessionConfig(model="tiny", name="calm")))
    (tmp_path / "rec" / "broken" / "x").mkdir(parents=True)
    (tmp_path / "rec" / "broken" / "x" / "rating.json").write_text("{not json", encoding="utf-8")

    with pytest.warns(UserWarning, match="talk rating skipped"):
        df = read_talk_ratings(tmp_path / "rec")
    assert len(df) == 5 and len(df.attrs["skipped"]) == 1
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS) and set(df["kind"]) == {"mos"}
    table = talk_mos_table(df)
    calm = np.array(SCORES["calm"], float)
    for j, crit in enumerate(("naturalness", "meaningfulness", "overall")):
        x = calm[:, j]
        half = x.mean() - stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))[0]
        assert table.loc["calm", crit] == pytest.approx(x.mean())
        assert table.loc["calm", f"{crit}_ci95"] == pytest.approx(half)
    assert table.loc["lively", "overall"] == pytest.approx(1.5)
    assert table.loc["calm", "n"] == 3 and table.loc["lively", "raters"] == 2


def test_server_recordings_go_through_the_analysis_tools(tmp_path: Path) -> None:
    recorder = ServerRecorder(tmp_path / "rec")
    conv = conversation(recorder, "p1", Setting(0, "System 1", SessionConfig(model="tiny", name="calm")))
    folder = recorder.folder_of(conv)
    assert folder is not None
    rec = Recording.load(folder)
    tt = turn_taking(rec, vad="energy")
    (gap,) = tt.gaps  # the user speaks 0.48-1.52 s, the model 2.00-3.04 s
    assert gap.start == pytest.approx(1.52, abs=0.05) and gap.end == pytest.approx(2.0, abs=0.05)
    assert not tt.overlaps
    grid = save_textgrid(rec, tmp_path / "r.TextGrid").read_text(encoding="utf-8")
    assert "はい" in grid
