"""Recording folders: an empty session saves, loads and says it is empty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jmoshi_nb.core.audio import AudioFileError, read_wav, write_wav
from jmoshi_nb.core.recording import Recording


def test_a_recording_without_frames_saves_and_loads_as_empty(tmp_path: Path) -> None:
    """What a microphone session stopped before the first frame leaves behind."""
    rec = Recording()
    assert rec.empty
    folder = rec.save(tmp_path / "empty")
    loaded = Recording.load(folder)
    assert loaded.empty and loaded.duration == 0.0 and loaded.metrics == [] and loaded.text == []
    assert loaded.stereo().shape == (0, 2)
    assert loaded.meta["frames"] == 0


def test_a_recording_with_a_frame_is_not_empty(tmp_path: Path) -> None:
    rec = Recording()
    rec.add_user(np.full(1920, 0.1, np.float32))
    rec.add_metrics({"frame": 0, "total_ms": 1.0})
    loaded = Recording.load(rec.save(tmp_path / "one"))
    assert not loaded.empty and len(loaded.metrics) == 1 and loaded.duration == pytest.approx(0.08)


def test_an_empty_input_file_is_still_an_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silent.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioFileError, match="holds no audio"):
        read_wav(path)


def test_a_recording_folder_is_one_that_holds_session_json(tmp_path: Path) -> None:
    from jmoshi_nb.core.recording import is_recording_folder, recording_folders

    saved = Recording().save(tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b" / "session.json").mkdir(parents=True)  # a folder of that name is not the file
    (tmp_path / "runs" / "notes.txt").write_text("x")
    assert is_recording_folder(saved) and not is_recording_folder(tmp_path / "runs" / "b")
    assert not is_recording_folder(tmp_path / "runs" / "notes.txt") and not is_recording_folder(tmp_path / "none")
    assert recording_folders(tmp_path) == [saved] and recording_folders(saved) == [saved]
