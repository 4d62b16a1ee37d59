"""Full-Duplex-Bench's own files in every item a kit run recorded, so FDB's scripts run on the folder.

After a run, each item folder holds what FDB's v1 evaluators open:

* ``turn_taking.json`` (turn-taking items): ``[{"text": "[TURN-TAKING]", "timestamp": [user_end, end of input]}]``;
  FDB reads ``timestamp[0]`` as the end of the user's turn.
* ``pause.json`` (pause-handling items): ``[{"text": "[PAUSE]", "timestamp": [pause start, pause end]}]``
  (FDB's pause evaluator does not read it; FDB's release has it).
* ``interrupt.json`` (interruption items): ``[{"context": the user's request, "interrupt": the barge-in,
  "timestamp": [start, end]}]``; FDB reads ``timestamp[1]`` and rates the response against both texts.
* ``output.json``: the model's words with times from its own text stream (``words``), only those after
  the interruption's end for interruption items (as FDB's ASR step crops the audio there).

A metadata file already there (FDB's own, copied from its release) is kept. ``output.json`` describes
``output.wav``, which a run has just replaced: one the kit wrote is rewritten; any other is moved to
``output.before-run.json`` (a name FDB's walkers do not pick up), so nothing is lost and no stale words
are scored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .layout import TIMING_FILE, Item, read_json
from .words import OUTPUT_JSON, SOURCE_TEXT_STREAM, words_from_text_events, write_output_json

if TYPE_CHECKING:
    from ...core.recording import Recording

log = logging.getLogger(__name__)
SET_ASIDE = "output.before-run.json"


def metadata_documents(item: Item) -> dict[str, Any]:
    """FDB's metadata files for ``item`` from the kit's timing.json: ``{file name: document}`` (may be empty)."""
    path = item.path / TIMING_FILE
    if not path.exists():
        return {}
    timing = read_json(path)
    texts = [str(t) for t in timing.get("text", [])]
    if item.task == "turn_taking" and timing.get("user_end") is not None:
        end = timing.get("duration_s", timing["user_end"])
        return {"turn_taking.json": [{"text": "[TURN-TAKING]", "timestamp": [timing["user_end"], end]}]}
    if item.task == "pause_handling" and timing.get("pause"):
        return {"pause.json": [{"text": "[PAUSE]", "timestamp": list(timing["pause"])}]}
    if item.task == "interruption" and timing.get("interrupt"):
        return {"interrupt.json": [{"context": texts[0] if texts else "",
                                    "interrupt": texts[-1] if len(texts) > 1 else "",
                                    "timestamp": list(timing["interrupt"])}]}  # fmt: skip
    return {}


def write_fdb_files(item: Item, rec: Recording) -> list[str]:
    """Write FDB's metadata files (where absent) and output.json for one recorded item; the names written.

    A failure is logged, never raised: the run's output.wav and recording are already saved.
    """
    written = []
    try:
        for name, doc in metadata_documents(item).items():
            if not (item.path / name).exists():
                (item.path / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
                written.append(name)
        words = words_from_text_events([(ev.frame, ev.text) for ev in rec.text])
        if item.task == "interruption":
            from .fdb_rules import interruption

            words = words.after(interruption(item)[0])
        _set_aside_foreign(item.path / OUTPUT_JSON)
        write_output_json(item.path / OUTPUT_JSON, words, replace=True)
        written.append(OUTPUT_JSON)
    except Exception as exc:  # the item is recorded; FDB's scoring will name what is missing
        log.error("bench: %s/%s: FDB's files not written: %s: %s", item.task, item.id, type(exc).__name__, exc)
    return written


def _set_aside_foreign(path: Path) -> None:
    if not path.exists():
        return
    try:
        source = json.loads(path.read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        source = None
    if source != SOURCE_TEXT_STREAM:
        path.replace(path.with_name(SET_ASIDE))
