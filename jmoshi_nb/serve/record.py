"""The server's own recordings (``serve --record DIR``): every conversation, whoever the client is.

A page's conversations have no other client to record them, so the server records each one with the
kit's streamed recording (``Recording.stream_to``): the user's audio as the server decoded it, the
model's audio, text, per-frame metrics, parameter changes, the config in force, the seed, the setting
it was given and the participant. A conversation that ends without the client saying so (a closed tab,
a lost connection) is saved marked cut short, and ``Recording.load`` says so.

``on_saved`` (optional) runs after each finished recording and each saved rating, with the folder
or file: on Modal it commits the Volume the recordings are on (``cloud.app``), so that a container
that stops afterwards loses nothing.

Layout: ``DIR/<participant>/<UTC time>-<id>/`` (a recording folder each). The participant id comes
from the page's ``?p=ID`` or is generated (``anon-…``); ``safe_participant`` makes it a single safe
folder name, so it never leads outside ``DIR``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.config import ConfigError, SessionConfig
from ..core.record_writer import SESSION_FILE
from ..core.recording import Recording

MAX_PARTICIPANT_CHARS = 64
RATING_FILE = "rating.json"  # beside the conversation's recording (serve --rate)
RATING_SCORES = ("naturalness", "meaningfulness", "overall")  # 1-5 each, the J-Moshi paper's criteria + overall
MAX_COMMENT_CHARS = 2000
_UNSAFE = re.compile(r"[^\w\-]+")  # letters and digits of any script, "_" and "-" stay
_STAMP = "%Y%m%dT%H%M%SZ"  # a conversation id is "<UTC time>-<6 hex digits>" (folder_for)
_CONVERSATION_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def safe_participant(raw: str | None) -> str:
    """A participant id made into one safe folder name; a generated ``anon-…`` id for none.

    Everything but letters, digits (any script), ``_`` and ``-`` becomes ``_``, so ``../x`` or ``a/b``
    can never name a folder outside the recordings folder.

    Parameters:
        raw: the id as given (``?p=``), or None.

    Returns:
        The folder name (at most ``MAX_PARTICIPANT_CHARS`` characters).
    """
    cleaned = _UNSAFE.sub("_", raw or "").strip("_")[:MAX_PARTICIPANT_CHARS]
    return cleaned or f"anon-{secrets.token_hex(4)}"


def check_writable(folder: Path) -> Path:
    """``folder`` (created if missing) after a test write; ConfigError naming it if it is not writable."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--record {folder}: not a writable folder ({exc.strerror or exc})") from None
    return folder.resolve()


class ServerRecorder:
    """Opens one streamed recording per conversation under ``root``.

    Parameters:
        root: the recordings folder (created; ConfigError if it is not writable).
        on_saved: called with the folder after each finished recording (``finish``) and with the file
            after each saved rating (``save_rating``), before they return; it may block (it runs in a
            worker thread of the server).
    """

    def __init__(self, root: str | Path, on_saved: Callable[[Path], None] | None = None) -> None:
        self.root = check_writable(Path(root))
        self.on_saved = on_saved
        self._lock = threading.Lock()
        self.folders: dict[str, Path] = {}  # conversation id -> its folder

    def folder_for(self, participant: str | None) -> tuple[str, Path]:
        """A new (conversation id, folder) for ``participant``, inside ``root`` by construction."""
        who = safe_participant(participant)
        stamp = datetime.now(UTC).strftime(_STAMP)
        with self._lock:
            while True:
                conversation = f"{stamp}-{secrets.token_hex(3)}"
                folder = self.root / who / conversation
                if conversation not in self.folders and not folder.exists():
                    break
            if folder.resolve().parent.parent != self.root:  # safe_participant makes this impossible
                raise ValueError(f"participant id {participant!r} would leave the recordings folder")
            self.folders[conversation] = folder
        return conversation, folder

    def open(
        self, participant: str | None, config: SessionConfig, session: dict[str, Any], meta: dict[str, Any]
    ) -> Recording:
        """A recording streaming to a new folder; ``meta`` gains the participant and conversation id."""
        conversation, folder = self.folder_for(participant)
        rec = Recording(config=config)
        rec.session = dict(session) | {"conversation": conversation}
        rec.meta.update(meta)
        rec.meta["participant"] = folder.parent.name
        rec.meta["conversation"] = conversation
        os.makedirs(folder, exist_ok=True)
        rec.stream_to(folder)
        return rec

    def finish(self, rec: Recording) -> Path:
        """Save the conversation's recording in the folder it streamed to, then run ``on_saved``.

        Returns:
            The recording's folder.
        """
        folder = rec.streaming_to
        if folder is None:
            raise ValueError("the recording is not one this recorder opened (it streams nowhere)")
        rec.save(folder)
        if self.on_saved is not None:
            self.on_saved(folder)
        return folder

    def folder_of(self, conversation: str) -> Path | None:
        """The folder of a conversation recorded in ``root``, None if there is no such one.

        First the conversations this recorder opened; then a recording of that id already in ``root``
        (one an earlier server process recorded there: on Modal, a container that stopped after
        committing it, so a rating sent after a restart still finds its conversation).
        """
        folder = self.folders.get(conversation)
        if folder is None and _CONVERSATION_ID.fullmatch(conversation):  # the id can hold no path
            found = [p.parent for p in self.root.glob(f"*/{conversation}/{SESSION_FILE}")]
            folder = found[0] if len(found) == 1 else None
        return folder

    def save_rating(self, answer: dict[str, Any]) -> Path:
        """Write a participant's rating beside the conversation's recording, on disk (and ``on_saved`` run)
        before returning.

        Parameters:
            answer: ``{"conversation", "naturalness", "meaningfulness", "overall", "comment"?}``, scores
                integers 1-5.

        Returns:
            The rating file (``RATING_FILE`` in the recording folder).

        Raises:
            ValueError: naming what is wrong (an unknown conversation, a score outside 1-5, a second rating).
        """
        if not isinstance(answer, dict):
            raise ValueError("a rating is a JSON object")
        folder = self.folder_of(str(answer.get("conversation", "")))
        if folder is None:
            raise ValueError(f"no conversation {answer.get('conversation')!r} was recorded here")
        row: dict[str, Any] = {}
        for key in RATING_SCORES:
            value = answer.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                raise ValueError(f"{key}={value!r}: a score is an integer 1-5")
            row[key] = value
        comment = answer.get("comment") or ""
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment: text of at most {MAX_COMMENT_CHARS} characters")
        path = folder / RATING_FILE
        with self._lock:
            if path.exists():
                raise ValueError("this conversation has already been rated")
            doc = {
                "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "participant": folder.parent.name,
                "conversation": folder.name,
                **row,
                "comment": comment,
            }
            tmp = path.with_suffix(".json.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(doc, fh, ensure_ascii=False, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself is on disk
            finally:
                os.close(dir_fd)
        if self.on_saved is not None:
            self.on_saved(path)
        return path


__all__ = [
    "MAX_PARTICIPANT_CHARS",
    "RATING_FILE",
    "RATING_SCORES",
    "ServerRecorder",
    "check_writable",
    "safe_participant",
]
