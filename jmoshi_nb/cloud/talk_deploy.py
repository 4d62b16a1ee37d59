"""The talk page of the deployed Modal app: its settings, shipped with the deploy, and where it records.

``jmoshi-nb modal deploy --configs calm.yaml wild.yaml --assign balanced --record pilot --rate`` gives
the deployed ``JMoshiServer`` the same talk page options as ``jmoshi-nb serve`` (``serve.server.configure``):

* the settings are loaded and checked on the researcher's machine by ``serve.settings.load_settings``
  (a bad file stops the deploy, naming the file and the field), then travel in the app's environment
  (``JMOSHI_MODAL_TALK``, JSON) to the containers, which rebuild them (``Setting.from_dict``) and give
  them out blind with ``SettingAssigner``: a participant sees "System 1", the recording names the file;
* every conversation is recorded by ``serve.record.ServerRecorder`` on the Volume ``jmoshi-nb-talk``
  under ``<record name>/<participant>/<conversation>/``, the rating (``--rate``) beside it;
* the Volume is committed after each conversation ends and after each rating (``on_saved``), before
  the page is told the rating is saved. Files written in a container reach the Volume only when
  committed; a container stops after its idle window, at ``modal app stop``, at a redeploy, or when
  Modal moves it, and what it had not committed is gone. Committing once per conversation (not per
  frame) keeps the Volume's traffic to one commit a conversation; a container that dies mid-conversation
  loses at most that conversation (Modal's own background commits may still save part of it).

Importable without ``modal``: the CLI validates with it before any Modal call, the tests run it here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.config import ConfigError
from ..serve.record import ServerRecorder
from ..serve.settings import ASSIGN_MODES, Setting, SettingAssigner, load_settings

RECORD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # one folder on the Volume


@dataclass(frozen=True)
class TalkDeploy:
    """The talk page's options of a deployed app (what ``serve``'s flags give a local server).

    ``settings``: ``Setting.as_dict()`` of each setting (none: the engine's defaults);
    ``record``: the folder on the talk Volume that every conversation is recorded in ("" = none).
    """

    settings: tuple[dict[str, Any], ...] = ()
    assign: str = "balanced"
    record: str = ""
    rate: bool = False
    show_controls: bool = False

    def to_env(self) -> str:
        """The value of ``JMOSHI_MODAL_TALK`` ("" for the defaults)."""
        if self == TalkDeploy():
            return ""
        return json.dumps(
            {"settings": list(self.settings), "assign": self.assign, "record": self.record, "rate": self.rate,
             "show_controls": self.show_controls}, ensure_ascii=False, sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_env(cls, text: str) -> TalkDeploy:
        """The options ``to_env`` wrote; ConfigError (naming the variable) if they do not read back."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            talk = cls(tuple(data["settings"]), str(data["assign"]), str(data["record"]), bool(data["rate"]),
                       bool(data["show_controls"]))  # fmt: skip
            talk.setting_objects()
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"JMOSHI_MODAL_TALK does not hold the talk page's settings: {exc}") from None
        return talk

    def setting_objects(self) -> list[Setting]:
        return [Setting.from_dict(d) for d in self.settings]

    def page_options(self, mount: str | Path, commit: Callable[[], None]) -> dict[str, Any]:
        """``serve.server.configure``'s keywords in a container whose talk Volume is at ``mount``.

        Parameters:
            mount: where the talk Volume is mounted.
            commit: makes what was written durable beyond the container (``Volume.commit``); runs after
                each finished conversation and each saved rating.

        Returns:
            ``assigner``, ``recorder``, ``show_controls``, ``rate``.
        """
        settings = self.setting_objects()
        assigner = SettingAssigner(settings, self.assign) if settings else None  # type: ignore[arg-type]
        recorder = ServerRecorder(Path(mount) / self.record, on_saved=lambda _path: commit()) if self.record else None
        return {"assigner": assigner, "recorder": recorder, "show_controls": self.show_controls, "rate": self.rate}

    def describe(self, volume: str) -> list[str]:
        """What a participant gets and what is kept, one line each (for ``deploy`` and ``status``)."""
        settings = self.setting_objects()
        if not settings:
            given = "the model's defaults (no --config/--configs)"
        else:
            given = ", ".join(f"{s.label} = {Path(s.source or '?').name}" for s in settings)
            given += f" (given out {self.assign}, blind)" if len(settings) > 1 else ""
        lines = [f"talk page settings: {given}"]
        if self.record:
            lines.append(f"recording every conversation on the Volume '{volume}' under {self.record}/")
        else:
            lines.append("recording: none (--record NAME records every conversation on a Volume)")
        lines.append(f"rating form: {'on' if self.rate else 'off'}; sampling sliders: "
                     f"{'shown' if self.show_controls else 'hidden'}")  # fmt: skip
        return lines


def talk_deploy(
    model: str,
    config: str | Path | None = None,
    configs: Sequence[str | Path] | None = None,
    assign: str = "balanced",
    record: str | None = None,
    rate: bool = False,
    show_controls: bool = False,
    max_containers: int | None = None,
) -> TalkDeploy:
    """The talk page's options from ``deploy``'s flags, checked before anything is deployed.

    Parameters:
        model: the model the app serves (it replaces each file's ``model``, as ``serve --model`` does).
        config / configs: one setting, or several given out blind (``--assign``).
        record: the folder on the talk Volume that every conversation is recorded in.
        rate: the page asks for a rating after each conversation (needs ``record``).
        show_controls: the page shows sampling sliders (a demo).
        max_containers: the app's GPU container cap (``--rate`` needs one container; see below).

    Returns:
        The options, ready for ``to_env``.

    Raises:
        ConfigError: naming the flag, or the file and the field.
    """
    if config and configs:
        raise ConfigError("--config and --configs: give one setting (--config) or several (--configs), not both")
    if assign not in ASSIGN_MODES:
        raise ConfigError(f"--assign {assign!r}: allowed {', '.join(ASSIGN_MODES)}")
    paths = list(configs or ([config] if config else []))
    settings = load_settings(paths, model) if paths else []
    if record is not None and not RECORD_NAME.fullmatch(record):
        raise ConfigError(
            f"--record {record!r}: the name of a folder on the Volume (letters, digits, '_' and '-', at most 64)"
        )
    if rate and not record:
        raise ConfigError("--rate needs --record NAME: each rating is stored beside its conversation's recording")
    if rate and max_containers is not None and max_containers > 1:
        # The rating form posts to whichever container Modal routes it to, and only the container that
        # recorded a conversation knows its folder (Modal has no session affinity).
        raise ConfigError(
            f"--rate with --max-containers {max_containers}: a rating must reach the container that recorded "
            "its conversation; deploy with one container (--max-sessions N serves N conversations on it)"
        )
    return TalkDeploy(tuple(s.as_dict() for s in settings), assign, record or "", rate, show_controls)


__all__ = ["RECORD_NAME", "TalkDeploy", "talk_deploy"]
