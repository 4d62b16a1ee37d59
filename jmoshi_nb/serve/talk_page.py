"""The talk page at ``GET /``: talk to the served model in a browser, no Jupyter.

The page (``pages/talk.html`` + ``talk.js`` + ``talk.css``, with ``ogg.js``, ``resampler.js`` and the
AudioWorklets) speaks moshi's protocol at ``/api/chat`` with Opus both ways through the browser's
WebCodecs (``AudioEncoder`` / ``AudioDecoder``), framed in Ogg pages by ``ogg.js``. It asks for the
kit's metadata (``?metrics=1``), so it shows the model's text as phrases, the setting's neutral label
and its own counters.

Access: with a server token, ``GET /?token=...`` answers the page and sets the token as an HttpOnly
cookie (SameSite=Strict), which the page's WebSocket and rating carry; the page then takes the token
out of its visible URL. A request without the token gets a 401 page that says so in words. The access
log never shows a token (``RedactingAccessLogger``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.web_log import AccessLogger

from ..core.audio import FRAME_SIZE, SAMPLE_RATE
from ..core.config import Sampling
from ..core.labels import Bilingual, label_texts
from ..core.models import GPU_DEFAULT, MODELS
from . import protocol as P
from .pages import PAGES, worklet_sources

STATIC_FILES = ("talk.js", "talk.css", "ogg.js", "resampler.js")  # served at /pages/<name>
RATING_PATH = "/api/rating"
MIN_BROWSERS = "Chrome / Edge 94+, Firefox 130+"  # WebCodecs AudioEncoder and AudioDecoder with Opus

TALK_PAGE_LABELS: dict[str, Bilingual] = {
    "title": ("J-Moshi と話す", "Talk to J-Moshi"),
    "intro": (
        "「開始」を押してマイクを許可し、日本語で話しかけてください。終わったら「終了」を押します。",
        "Press Start, allow the microphone and speak Japanese. Press End when you are done.",
    ),
    "start": ("● 開始", "Start"),
    "end": ("■ 終了", "End"),
    "volume": ("音量", "Volume"),
    "level": ("入力レベル", "Input level"),
    "elapsed": ("経過時間", "Elapsed"),
    "text": ("モデルの発話", "What the model says"),
    "system": ("システム", "System"),
    "connecting": ("接続中…", "Connecting…"),
    "talking": ("会話中", "Talking"),
    "ended": ("会話を終了しました", "The conversation has ended"),
    "no_webcodecs": (
        f"このブラウザは WebCodecs の Opus に対応していません。{MIN_BROWSERS} をお使いください。",
        f"This browser has no WebCodecs Opus: please use {MIN_BROWSERS}.",
    ),
    "no_mic_api": (
        "このページではマイクを使えません。https のアドレスか、このコンピュータ上（localhost）で開いてください。",
        "This page cannot use a microphone: open it over https, or on this computer (localhost).",
    ),
    "mic_denied": (
        "マイクの使用が許可されていません。アドレスバーのマイクのアイコンから許可して、もう一度「開始」を押してください。",
        "Microphone permission was refused: allow it from the microphone icon in the address bar, "
        "then press Start again.",
    ),
    "mic_missing": (
        "マイクが見つかりません。マイクを接続してから、もう一度「開始」を押してください。",
        "No microphone was found: connect one, then press Start again.",
    ),
    "mic_unreadable": (
        "マイクを開けません。ほかのアプリがマイクを使っていないか確認してください。",
        "The microphone cannot be opened: check that no other application is using it.",
    ),
    "busy": (
        "ただいま混み合っています。しばらくしてからもう一度お試しください。",
        "The server is busy: please try again in a little while.",
    ),
    "unauthorized": (
        "このリンクではアクセスできません（トークンがないか、正しくありません）。研究者から受け取ったリンクをそのまま開いてください。",
        "This link does not give access (its token is missing or wrong): "
        "open the link exactly as the researcher sent it.",
    ),
    "lost": ("接続が切れました", "The connection was lost"),
    "server_error": ("サーバーのエラー", "Server error"),
    "temp": ("音声の温度", "Audio temperature"),
    "top_k": ("音声の top-k", "Audio top-k"),
    "temp_text": ("テキストの温度", "Text temperature"),
    "top_k_text": ("テキストの top-k", "Text top-k"),
    "rate_title": ("この会話の評価", "Rate this conversation"),
    "naturalness": ("自然さ", "Naturalness"),
    "naturalness_hint": ("人どうしの会話のように聞こえましたか", "Did it sound like a human conversation?"),
    "meaningfulness": ("有意味さ", "Meaningfulness"),
    "meaningfulness_hint": ("話の内容は意味が通っていましたか", "Did what was said make sense?"),
    "overall": ("総合", "Overall"),
    "overall_hint": ("全体としての印象", "Your overall impression"),
    "scale_low": ("1 = 非常に悪い", "very poor"),
    "scale_high": ("5 = 非常に良い", "very good"),
    "comment": ("コメント（任意）", "Comment (optional)"),
    "submit": ("送信", "Submit"),
    "rate_missing": ("3 つの項目すべてを選んでください", "Please choose a score for all three"),
    "thanks": ("ご協力ありがとうございました。", "Thank you for taking part."),
    "rate_failed": ("評価を保存できませんでした", "The rating could not be saved"),
    "again": ("もう一度話す", "Talk again"),
}

# The 401 page: the talk page's own words (no script, no token needed).
UNAUTHORIZED_HTML = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>401</title><link rel="stylesheet" href="/pages/talk.css"></head>
<body><main class="jt-page"><h1>{title}</h1><p class="jt-error" role="alert">{text}</p></main></body></html>
"""


def page_labels() -> dict[str, str]:
    """Every label of the page as ``"日本語 / English"``."""
    return label_texts(TALK_PAGE_LABELS, "both")


def page_config(show_controls: bool, rate: bool, sampling: Sampling, card: int, text_card: int) -> dict[str, Any]:
    """What the page's script reads at load (embedded in the HTML as JSON)."""
    return {
        "labels": page_labels(),
        "sample_rate": SAMPLE_RATE,
        "frame_size": FRAME_SIZE,
        "chat_path": P.CHAT_PATH,
        "rating_path": RATING_PATH,
        "participant_query": P.PARTICIPANT_QUERY,
        "url_sampling": {field: name for name, field in P.URL_SAMPLING.items()},
        "show_controls": show_controls,
        "rate": rate,
        "sampling": sampling.model_dump(),
        "limits": {"card": card, "text_card": text_card},
    }


def render_page(config: Mapping[str, Any]) -> str:
    """The talk page's HTML with ``config`` embedded."""
    template = (PAGES / "talk.html").read_text(encoding="utf-8")
    labels = config["labels"]
    payload = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    return template.replace("{{title}}", html.escape(labels["title"])).replace("{{config}}", payload)


def export_static(folder: str | Path, model: str = GPU_DEFAULT, show_controls: bool = False) -> Path:
    """The talk page as static files in ``folder``, for any server of moshi's protocol that serves a folder.

    ``python -m moshi.server --static FOLDER`` serves it at ``/`` next to its ``/api/chat``: the page
    then talks to moshi's own server (no token, no metrics, no rating there: text and audio only).

    Parameters:
        folder: where ``index.html`` and ``pages/`` go (created).
        model: the kit's name of the served model (its vocabularies bound the sliders).
        show_controls: show the sampling sliders (sent as moshi's URL parameters).

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    (folder / "pages" / "worklet").mkdir(parents=True, exist_ok=True)
    spec = MODELS[model]
    config = page_config(show_controls, False, Sampling(), spec.card, spec.text_card)
    (folder / "index.html").write_text(render_page(config), encoding="utf-8")
    for name in STATIC_FILES:
        (folder / "pages" / name).write_text((PAGES / name).read_text(encoding="utf-8"), encoding="utf-8")
    for name, source in worklet_sources().items():
        (folder / "pages" / "worklet" / f"{name}.js").write_text(source, encoding="utf-8")
    return folder


def unauthorized_page() -> web.Response:
    labels = page_labels()
    body = UNAUTHORIZED_HTML.format(title=html.escape(labels["title"]), text=html.escape(labels["unauthorized"]))
    return web.Response(status=401, text=body, content_type="text/html", charset="utf-8")


async def static_file(request: web.Request) -> web.Response:
    """``/pages/<name>``: the page's scripts and style (no secret in them: no token needed)."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text=f"no page file {name!r}")
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    text = (PAGES / name).read_text(encoding="utf-8")
    return web.Response(text=text, content_type=kind, charset="utf-8", headers={"Cache-Control": "no-cache"})


async def no_icon(_request: web.Request) -> web.Response:
    """``/favicon.ico``: none (an empty answer instead of a 404 in the browser's console)."""
    return web.Response(status=204)


async def worklet_file(request: web.Request) -> web.Response:
    """``/pages/worklet/<capture|player>.js``: an AudioWorklet after the shared resampler."""
    sources = worklet_sources()
    name = request.match_info["name"].removesuffix(".js")
    if name not in sources:
        raise web.HTTPNotFound(text=f"no worklet {name!r}")
    return web.Response(text=sources[name], content_type="text/javascript", charset="utf-8")


def page_link(url: str, token: str | None = None) -> str:
    """The talk page's address for a server at ``url`` (ws://, http://, https:// or a ``.../api/chat`` URL).

    Parameters:
        url: the server's address as the kit's clients know it.
        token: the server's token, put in the link (the page takes it out of its visible URL).

    Returns:
        ``http(s)://host:port/`` with ``?token=...`` when there is a token.
    """
    base = url.rstrip("/").removesuffix(P.CHAT_PATH)
    for ws, http in (("wss://", "https://"), ("ws://", "http://")):
        if base.startswith(ws):
            base = http + base.removeprefix(ws)
    return f"{base}/" + (f"?{urlencode({'token': token})}" if token else "")


class ShareLink(str):
    """A talk-page link: a ``str``, shown in a notebook as a clickable link."""

    def _repr_html_(self) -> str:
        href = html.escape(self, quote=True)
        text = html.escape(label_texts({"open": ("トークページを開く", "Open the talk page")})["open"])
        return f'<a href="{href}" target="_blank" rel="noopener noreferrer">{text}</a>: <code>{href}</code>'


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced by ``***``."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with tokens taken out of the request line (``GET /?token=*** ...``)."""

    def log(self, request: Any, response: Any, time: float) -> None:
        if request is not None and "token=" in request.path_qs.lower():
            request = request.clone(rel_url=redact(request.path_qs))
        super().log(request, response, time)


__all__ = [
    "MIN_BROWSERS",
    "RATING_PATH",
    "RedactingAccessLogger",
    "ShareLink",
    "TALK_PAGE_LABELS",
    "export_static",
    "page_config",
    "page_labels",
    "page_link",
    "redact",
    "render_page",
    "unauthorized_page",
]
