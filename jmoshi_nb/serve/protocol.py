"""The WebSocket protocol at ``/api/chat``, named once for server and client.

Binary messages, first byte = kind, as moshi's own clients speak it:

=====  ==========  =================================================================
0x00   handshake   server -> client on accept (the session may start)
0x01   audio       Ogg Opus pages, 24 kHz mono, both ways
0x02   text        UTF-8 text piece, server -> client
0x03   control     one byte (moshi web client: start/end turn/pause/restart); ignored
0x04   metadata    UTF-8 JSON object with a ``type``, both ways (kit extension)
0x05   error       UTF-8 readable message, server -> client
0x06   ping        keep-alive, either way; answered with a ping
=====  ==========  =================================================================

moshi's web client validates *every* 0x04 message as the Rust server's info object (``SERVER_INFO_KEYS``),
so the kit's additions go only to clients that ask for them, with ``?metrics=1`` in the chat URL or a
first ``{"type": "hello", "metrics": true}`` (the kit's client, notebook and talk page). Every other
client gets exactly one 0x04 message after the handshake: ``server_info(...)``, the values in force.

For clients that asked:

* server -> client ``{"type": "session", ...}`` after the handshake: model, device, sampling in force.
* server -> client ``{"type": "metrics", "frame": i, "encode_ms", "lm_ms", "decode_ms", "total_ms",
  "text_token", "text", "params", "seed", "audio": bool}`` once per 80 ms frame.
* server -> client ``{"type": "dropped", "index": n}``: the engine fell ``max_lag_frames`` behind and
  dropped the client's frame ``n`` (counted from 0 in the order sent) to keep latency bounded.
* client -> server ``{"type": "set_params", "temp"?, "temp_text"?, "top_k"?, "top_k_text"?, "seed"?}``;
  the server validates, answers ``{"type": "params", "params": {...}, "seed", "from_frame": n}`` and
  the values take effect at frame ``n`` (the next one), or answers with an 0x05 error.
* client -> server ``{"type": "end"}``: the conversation ends as the client meant it to (a recording
  without it, for a socket that broke, says it was cut short).

moshi's web client sends its sampling as URL parameters (``URL_SAMPLING``, ``URL_SEED``); they apply to
that conversation, checked like ``set_params``. Those the kit has no counterpart for (``URL_IGNORED``)
are recorded as ignored. While a conversation is open the server sends a 0x06 ping whenever it has been
silent for ``PING_INTERVAL_S``: moshi's web client closes a socket after 10 s without a message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ..core.config import ConfigError, Sampling

CHAT_PATH = "/api/chat"
HEALTH_PATH = "/api/health"
MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a second of Opus is ~3 KB; anything near this is not audio
OGG_MAGIC = b"OggS"
METRICS_QUERY = "metrics"  # ?metrics=1: send the kit's 0x04 messages (session, metrics, params, dropped)
PARTICIPANT_QUERY = "p"  # ?p=ID: who is talking (the talk page passes its own ?p= on)
PING_INTERVAL_S = 2.0  # a ping after this long without a message (moshi's web client gives up at 10 s)

# moshi's web client's URL parameters -> the kit's Sampling field they set.
URL_SAMPLING = {
    "text_temperature": "temp_text",
    "text_topk": "top_k_text",
    "audio_temperature": "temp",
    "audio_topk": "top_k",
}
URL_SEED = "text_seed"  # the conversation's seed (the kit has one random stream for text and audio)
URL_IGNORED = ("pad_mult", "repetition_penalty_context", "repetition_penalty", "audio_seed")
# The Rust server's info object, as moshi's web client checks it (client/src/.../useServerInfo.ts).
SERVER_INFO_KEYS = (
    "text_temperature", "text_topk", "audio_temperature", "audio_topk", "pad_mult",
    "repetition_penalty_context", "repetition_penalty", "lm_model_file", "instance_name", "build_info",
)  # fmt: skip
BUILD_INFO_KEYS = (
    "build_timestamp", "build_date", "git_branch", "git_timestamp", "git_date", "git_hash", "git_describe",
    "rustc_host_triple", "rustc_version", "cargo_target_triple",
)  # fmt: skip


class Kind(IntEnum):
    HANDSHAKE = 0x00
    AUDIO = 0x01
    TEXT = 0x02
    CONTROL = 0x03
    METADATA = 0x04
    ERROR = 0x05
    PING = 0x06


class ProtocolError(ValueError):
    """A message that breaks the protocol; the text is sent to the peer as an 0x05 error."""


def pack(kind: Kind, payload: bytes = b"") -> bytes:
    return bytes([kind]) + payload


def pack_json(obj: dict[str, Any]) -> bytes:
    return pack(Kind.METADATA, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def pack_text(text: str) -> bytes:
    return pack(Kind.TEXT, text.encode("utf-8"))


def pack_error(message: str) -> bytes:
    return pack(Kind.ERROR, message.encode("utf-8"))


def unpack(message: bytes) -> tuple[Kind, bytes]:
    """Split a message into (kind, payload); ProtocolError names what is wrong."""
    if len(message) == 0:
        raise ProtocolError("empty message: every message starts with a kind byte")
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(message)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        kind = Kind(message[0])
    except ValueError:
        raise ProtocolError(f"unknown message kind 0x{message[0]:02x}") from None
    return kind, message[1:]


def parse_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"metadata is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError('metadata must be a JSON object with a string "type"')
    return obj


@dataclass
class ChatQuery:
    """What a client asked for in the chat URL's query string (all optional)."""

    sampling: dict[str, Any] = field(default_factory=dict)  # Sampling field -> value
    seed: int | None = None
    ignored: dict[str, str] = field(default_factory=dict)  # moshi's parameters the kit has no counterpart for
    metrics: bool = False
    participant: str | None = None


def _number(name: str, text: str, integer: bool) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"URL parameter {name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"URL parameter {name}={text!r} is not a finite number")
    if integer:
        if value != int(value):
            raise ConfigError(f"URL parameter {name}={text!r} is not an integer")
        return int(value)
    return value


def parse_chat_query(query: Mapping[str, str]) -> ChatQuery:
    """The chat URL's parameters (moshi's web client's and the kit's); ConfigError names a bad one.

    Numbers are parsed here; their ranges are checked against the conversation's sampling by
    ``Sampling.updated`` and ``check_cards``, as for ``set_params``.
    """
    out = ChatQuery()
    for url_name, field_name in URL_SAMPLING.items():
        if url_name in query:
            integer = Sampling.model_fields[field_name].annotation is int
            out.sampling[field_name] = _number(url_name, query[url_name], integer)
    if URL_SEED in query:
        seed = _number(URL_SEED, query[URL_SEED], integer=True)
        out.seed = int(seed)
    out.ignored = {name: query[name] for name in URL_IGNORED if name in query}
    out.metrics = query.get(METRICS_QUERY, "") in ("1", "true", "yes")
    out.participant = query.get(PARTICIPANT_QUERY) or None
    return out


def server_info(sampling: Sampling, lm_model_file: str, instance_name: str, version: str) -> dict[str, Any]:
    """The one 0x04 object for clients that did not ask for the kit's metadata: the Rust server's info shape.

    The values are those in force. ``pad_mult`` and the repetition penalty have no counterpart in the
    kit: they are reported as not applied (0 and 1.0). ``build_info`` names the kit and its version.
    """
    build = dict.fromkeys(BUILD_INFO_KEYS, "n/a")
    build["git_describe"] = f"jmoshi-nb {version}"
    return {
        "text_temperature": float(sampling.temp_text),
        "text_topk": int(sampling.top_k_text),
        "audio_temperature": float(sampling.temp),
        "audio_topk": int(sampling.top_k),
        "pad_mult": 0.0,
        "repetition_penalty_context": 0,
        "repetition_penalty": 1.0,
        "lm_model_file": lm_model_file,
        "instance_name": instance_name,
        "build_info": build,
    }
