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

moshi's clients ignore 0x04, so the kit's additions travel there:

* server -> client ``{"type": "session", ...}`` after the handshake: model, device, sampling in force.
* server -> client ``{"type": "metrics", "frame": i, "encode_ms", "lm_ms", "decode_ms", "total_ms",
  "text_token", "text", "params", "seed", "audio": bool}`` once per 80 ms frame.
* server -> client ``{"type": "dropped", "index": n}``: the engine fell ``max_lag_frames`` behind and
  dropped the client's frame ``n`` (counted from 0 in the order sent) to keep latency bounded.
* client -> server ``{"type": "set_params", "temp"?, "temp_text"?, "top_k"?, "top_k_text"?, "seed"?}``;
  the server validates, answers ``{"type": "params", "params": {...}, "seed", "from_frame": n}`` and
  the values take effect at frame ``n`` (the next one), or answers with an 0x05 error.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

CHAT_PATH = "/api/chat"
HEALTH_PATH = "/api/health"
MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a second of Opus is ~3 KB; anything near this is not audio
OGG_MAGIC = b"OggS"


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
