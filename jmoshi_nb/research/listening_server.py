"""The rater page: a saved listening test over HTTP, for raters who never open Jupyter (aiohttp).

``jmoshi-nb listen serve TEST`` and ``ListeningTest.serve()`` run it. The trial logic is
``ListeningTest``'s (the notebook widget's too): this module only carries it over HTTP.

    GET  /                      the page (``rater_page/index.html``; ``?rater=ID``, ``?token=T``)
    GET  /static/<file>         its script, state logic and style (files in ``rater_page/``)
    POST /api/rater             a new rater id: ``{"rater": "r-1a2b3c4d"}``
    GET  /api/state?rater=ID    where the rater stands: the trial to show (blind), progress, the code
    GET  /api/clip/<trial>/<k>.wav?rater=ID   the k-th clip of the rater's current trial (24 kHz WAV)
    POST /api/answer            ``{rater, trial, naturalness, meaningfulness}`` or ``{rater, trial, choice}``
    GET  /api/progress          per rater: answered, total, finished (the notebook's live view)

Each answer is checked (the rater's next trial, values in range), appended to the rater's CSV and
fsynced before the next trial is returned; ``on_saved(path)`` then runs (on Modal: the Volume's
commit). A rater who comes back with the same id gets the next unanswered trial. Trial ids on the
wire are opaque (an HMAC of the trial under the test's secret): the page cannot tell a trapping or
gold clip from the others, nor see a system's name. The server notes when it first showed a trial,
and stores the seconds to the answer (``listened_s``) for screening. With a token, every request
presents it (``?token=`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..core.access import link_host, token_ok
from ..core.labels import Bilingual, label_texts
from ..serve.loop_thread import AppThread, LoopThread
from ..serve.talk_page import RedactingAccessLogger
from .listening_labels import LISTENING_LABELS
from .listening_quality import RATED_KINDS, check_rater_id, new_rater_id

if TYPE_CHECKING:  # the test starts this page (ListeningTest.serve): its types only
    from .listening import ListeningTest, Trial

log = logging.getLogger("jmoshi_nb.research.listening_server")

PAGE_DIR = Path(__file__).with_name("rater_page")
STATIC_FILES = {"rater.js": "text/javascript", "rater-state.js": "text/javascript", "rater.css": "text/css"}

PAGE_LABELS: dict[str, Bilingual] = {
    **LISTENING_LABELS,
    "title": ("聴取実験", "Listening test"),
    "your_id": ("あなたの評価者 ID（続きから再開するときに使います）", "Your rater id (to continue later)"),
    "intro": (
        "ヘッドホンを着けて、静かな場所で聞いてください。各音声は最後まで再生すると評価できます。",
        "Wear headphones, in a quiet place. Each clip can be rated once it has played to the end.",
    ),
    "begin": ("始める", "Begin"),
    "play": ("再生", "Play"),
    "playing": ("再生中…", "Playing…"),
    "played": ("再生済み", "Played"),
    "listen_first": ("最後まで聞くと回答できます", "Listen to the end to answer"),
    "send": ("回答する", "Answer"),
    "code": ("完了コード（クラウドソーシングの画面に入力してください）", "Completion code (enter it on the platform)"),
    "saving": ("保存中…", "saving…"),
    "not_saved": ("回答は保存されていません", "the answer was not saved"),
}
ERRORS: dict[str, Bilingual] = {
    "token": ("トークンがないか、違います", "missing or wrong token"),
    "not_next": (
        "この試行は次の試行ではありません（回答済みか、順番が違います）",
        "that trial is not your next one (already answered, or out of order)",
    ),  # fmt: skip
    "disk": ("回答を保存できませんでした", "the answer could not be saved"),
}


def _error(key: str, status: int, detail: str = "") -> web.Response:
    ja, en = ERRORS[key]
    text = f"{ja} / {en}" + (f": {detail}" if detail else "")
    return web.json_response({"error": text, "code": key}, status=status)


class RaterServer:
    """The rater page of one ``ListeningTest`` (saved: ``ListeningTest.open``; or in memory with a ratings folder).

    Parameters
    ----------
    test: the test; its ratings go to one CSV per rater (``test.ratings_path``).
    token: if set, every request must present it.
    on_saved: called with the CSV path after each answer is durable (Modal: commit the Volume).
    """

    def __init__(
        self, test: ListeningTest, token: str | None = None, on_saved: Callable[[Path], None] | None = None
    ) -> None:
        self.test, self.token, self.on_saved = test, token, on_saved
        self._locks: dict[str, asyncio.Lock] = {}
        self._remaining: dict[str, list[Trial]] = {}
        self._totals: dict[str, int] = {}
        self._shown: dict[tuple[str, str], float] = {}
        self._thread: AppThread | None = None
        self.url = ""
        key = (test.secret or "jmoshi-nb").encode()
        self._public = {t.id: hmac.new(key, t.id.encode(), hashlib.sha256).hexdigest()[:12] for t in self._all_trials()}

    def _all_trials(self) -> list[Trial]:
        return self.test.trials("")  # every trial of the test (the order is per rater; the set is the same)

    def public_id(self, trial: Trial) -> str:
        """The trial's id on the wire (opaque: no kind, clip or system in it)."""
        return self._public[trial.id]

    # ---- the app ---------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        """The aiohttp application (routes in the module docstring)."""
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_post("/api/rater", self.new_rater)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/clip/{trial}/{k}.wav", self.clip)
        app.router.add_post("/api/answer", self.answer)
        app.router.add_get("/api/progress", self.progress_view)
        return app

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RaterServer:
        """Serve on a background thread (``port=0``: any free port); ``url`` is the link for raters."""
        self._thread = AppThread(
            self.make_app(), host, port, name="jmoshi-nb-rater-page", access_log_class=RedactingAccessLogger
        ).start()  # the page's requests carry ?token=: never in the access log
        shown = link_host(host)
        self.url = f"http://{shown}:{self._thread.port}/" + (f"?token={self.token}" if self.token else "")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._thread = None

    def __enter__(self) -> RaterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">{self.url}</a>' if self.url else "(not running)"

    # ---- state -----------------------------------------------------------------------------------
    def _queue(self, rater: str) -> list[Trial]:
        if rater not in self._remaining:
            self._totals[rater] = len(self.test.trials(rater))
            self._remaining[rater] = self.test.remaining(rater)
        return self._remaining[rater]

    def _state(self, rater: str) -> dict[str, Any]:
        queue = self._queue(rater)
        total = self._totals[rater]
        out: dict[str, Any] = {"rater": rater, "total": total, "answered": total - len(queue),
                               "finished": not queue, "full_play": self.test.full_play}  # fmt: skip
        if not queue:
            out["trial"] = None
            if self.test.secret:
                out["code"] = self.test.completion_code(rater)
            return out
        trial = queue[0]
        pid = self.public_id(trial)
        self._shown.setdefault((rater, trial.id), time.monotonic())
        head = [t for t in self.test.trials(rater) if t.kind == "headphone"]
        out["trial"] = {
            "id": pid,
            "kind": "rate" if trial.kind in RATED_KINDS else trial.kind,  # trap and gold look like any clip
            "index": total - len(queue) + 1,
            "clips": [f"api/clip/{pid}/{k}.wav" for k in range(len(trial.clips))],
            "seconds": round(self.test.seconds(trial), 3),
        }
        if trial.kind == "headphone":
            out["trial"]["check"] = [head.index(trial) + 1, len(head)]
        return out

    def _rater(self, request: web.Request, body: dict[str, Any] | None = None) -> str:
        raw = (body or {}).get("rater", request.query.get("rater", ""))
        return check_rater_id(str(raw))

    def progress(self) -> dict[str, dict[str, Any]]:
        """Per rater with a ratings file: answered, total, finished (read from the files on disk)."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.test.ratings if self.test.ratings.suffix.lower() != ".csv" else None
        files = sorted(folder.glob("*.csv")) if folder and folder.exists() else []
        for f in files:
            try:
                rater = check_rater_id(f.stem)
            except ValueError:
                continue
            total = len(self.test.trials(rater))
            answered = len(self.test.done(rater))
            out[rater] = {"answered": answered, "total": total, "finished": answered >= total}
        return out

    # ---- handlers --------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return web.Response(text="トークンがないか、違います / missing or wrong token", status=401)
        html = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
        labels = json.dumps(label_texts(PAGE_LABELS, "both"), ensure_ascii=False).replace("</", "<\\/")
        html = html.replace("/*LABELS*/{}", labels)
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=(PAGE_DIR / name).read_bytes(), content_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    async def new_rater(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return _error("token", 401)
        return web.json_response({"rater": new_rater_id()})

    async def state(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return _error("token", 401)
        try:
            rater = self._rater(request)
        except ValueError as exc:
            return web.json_response({"error": str(exc), "code": "rater"}, status=400)
        async with self._lock(rater):
            return web.json_response(await asyncio.to_thread(self._state, rater))

    async def clip(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return _error("token", 401)
        try:
            rater = self._rater(request)
            k = int(request.match_info["k"])
        except ValueError as exc:
            return web.json_response({"error": str(exc), "code": "rater"}, status=400)
        queue = self._queue(rater)
        if not queue or self.public_id(queue[0]) != request.match_info["trial"] or not 0 <= k < len(queue[0].clips):
            return _error("not_next", 404)
        body = await asyncio.to_thread(self.test.wav, queue[0].clips[k])
        return web.Response(body=body, content_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def answer(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return _error("token", 401)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the answer is a JSON object")
            rater = self._rater(request, body)
        except ValueError as exc:
            return web.json_response({"error": str(exc), "code": "bad"}, status=400)
        async with self._lock(rater):
            queue = self._queue(rater)
            if not queue or body.get("trial") != self.public_id(queue[0]):
                return _error("not_next", 409)
            trial = queue[0]
            shown = self._shown.get((rater, trial.id))
            listened = None if shown is None else time.monotonic() - shown
            try:
                answer = _answer_values(trial, body)
                await asyncio.to_thread(self.test.answer, rater, trial, listened_s=listened, **answer)
            except ValueError as exc:
                return web.json_response({"error": str(exc), "code": "bad"}, status=400)
            except OSError as exc:
                log.error("rater %s: answer to %s not saved: %s", rater, trial.id, exc)
                return _error("disk", 507, str(exc))
            queue.pop(0)
            self._shown.pop((rater, trial.id), None)
            if self.on_saved is not None:
                await asyncio.to_thread(self.on_saved, self.test.ratings_path(rater))
            return web.json_response(await asyncio.to_thread(self._state, rater))

    async def progress_view(self, request: web.Request) -> web.StreamResponse:
        if not token_ok(request, self.token):
            return _error("token", 401)
        return web.json_response(await asyncio.to_thread(self.progress))

    def _lock(self, rater: str) -> asyncio.Lock:
        return self._locks.setdefault(rater, asyncio.Lock())


def _answer_values(trial: Trial, body: dict[str, Any]) -> dict[str, Any]:
    """The answer's values for ``ListeningTest.answer``; integers checked here, ranges there."""
    if trial.kind in RATED_KINDS:
        out = {}
        for key in ("naturalness", "meaningfulness"):
            value = body.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key} must be an integer 1-5, got {value!r}")
            out[key] = value
        return out
    return {"choice": str(body.get("choice"))}


def serve_listening(
    test: ListeningTest,
    host: str = "127.0.0.1",
    port: int = 8999,
    token: str | None = None,
    on_saved: Callable[[Path], None] | None = None,
) -> None:
    """Serve the rater page in the foreground until interrupted (``jmoshi-nb listen serve``)."""
    app = RaterServer(test, token, on_saved).make_app()
    web.run_app(app, host=host, port=port, print=None, access_log_class=RedactingAccessLogger)


def progress_table(test: ListeningTest) -> Any:
    """Per rater: answered, total, finished, read from the ratings files (a DataFrame; the notebook's live view)."""
    import pandas as pd

    rows = [{"rater": r, **v} for r, v in RaterServer(test).progress().items()]
    return pd.DataFrame(rows, columns=["rater", "answered", "total", "finished"]).set_index("rater")


# ---- simulated raters (the notebook's demo and CI, the tests, the benchmark) ----------------------------
Answer = Callable[[dict[str, Any]], dict[str, Any]]


def random_answer(rng: random.Random) -> Answer:
    """Answers of a careless rater: valid values at random (fails the quality controls, as it should)."""

    def answer(trial: dict[str, Any]) -> dict[str, Any]:
        if trial["kind"] == "rate":
            return {"naturalness": rng.randint(1, 5), "meaningfulness": rng.randint(1, 5)}
        if trial["kind"] == "ab":
            return {"choice": rng.choice(["A", "B", "same"])}
        return {"choice": rng.choice(["1", "2", "3"])}

    return answer


def attentive_answer(server: RaterServer, rater: str, rng: random.Random) -> Answer:
    """Answers of an attentive rater: what each control clip asks for, the others at random.

    It reads the expected answer from ``server`` (same process): a stand-in for a person who heard
    the trap's instruction, the degraded gold clip and the softer tone.
    """

    def answer(trial: dict[str, Any]) -> dict[str, Any]:
        expected = server.test.expected(server._queue(rater)[0])
        if trial["kind"] == "rate" and expected:
            value = int(expected.split("-")[0])
            return {"naturalness": value, "meaningfulness": value}
        if trial["kind"] == "headphone":
            return {"choice": expected}
        return random_answer(rng)(trial)

    return answer


async def rate_all(
    session: Any,
    base: str,
    rater: str,
    answer: Answer,
    token: str | None = None,
    limit: int | None = None,
    fetch_clips: bool = True,
    listen: bool = False,
) -> list[dict[str, Any]]:
    """Go through ``rater``'s trials over HTTP as the page does (state, clips, answer).

    Parameters
    ----------
    session: an ``aiohttp.ClientSession``.
    base: the page's URL without the query (``http://127.0.0.1:PORT/``).
    answer: ``answer(trial) -> {naturalness, meaningfulness} | {choice}``.
    limit: stop after this many answers (None: until finished).
    fetch_clips: download each trial's clips first, as the page does.
    listen: wait each trial's clip length before answering, as a rater who listens to the end.

    Returns
    -------
    What was sent, one dict per answer (with the trial's ``kind`` and ``index``), then
    ``{"final": state}``: the last state (with the completion code once finished).
    """
    auth = {"token": token} if token else {}
    sent: list[dict[str, Any]] = []
    async with session.get(f"{base}api/state", params={"rater": rater, **auth}) as res:
        state = await res.json()
        res.raise_for_status()
    while not state["finished"] and (limit is None or len(sent) < limit):
        trial = state["trial"]
        if fetch_clips:
            for url in trial["clips"]:
                async with session.get(base + url, params={"rater": rater, **auth}) as res:
                    res.raise_for_status()
                    await res.read()
        if listen:
            await asyncio.sleep(trial["seconds"])
        body = {"rater": rater, "trial": trial["id"], **answer(trial)}
        async with session.post(f"{base}api/answer", json=body, params=auth) as res:
            new = await res.json()
            if res.status != 200:
                raise RuntimeError(f"{rater}: answer refused ({res.status}): {new}")
        sent.append({**body, "kind": trial["kind"], "index": trial["index"]})
        state = new
    sent.append({"final": state})
    return sent


def simulate_raters(server: RaterServer, raters: dict[str, str], seed: int = 0) -> dict[str, int]:
    """Simulated raters take the test over HTTP at once, through the running page ``server``.

    Parameters
    ----------
    server: a started ``RaterServer`` (``ListeningTest.serve()``).
    raters: ``{rater id: "attentive" | "careless"}``. Attentive raters listen to each clip's length
        and answer the controls right; careless ones answer at once, at random (screened out).
    seed: their random answers.

    Returns
    -------
    ``{rater id: answers given}``.
    """
    import aiohttp

    base = server.url.split("?")[0]

    async def everyone() -> dict[str, int]:
        async with aiohttp.ClientSession() as session:
            runs = []
            for i, (rater, how) in enumerate(raters.items()):
                rng = random.Random(seed + i)
                answer = attentive_answer(server, rater, rng) if how == "attentive" else random_answer(rng)
                runs.append(rate_all(session, base, rater, answer, server.token, listen=how == "attentive"))
            done = await asyncio.gather(*runs)
        return {r: len(d) - 1 for r, d in zip(raters, done, strict=True)}

    loop = LoopThread("jmoshi-nb-simulated-raters")
    try:
        return loop.submit(everyone()).result()
    finally:
        loop.stop()


__all__ = [
    "PAGE_LABELS",
    "RaterServer",
    "attentive_answer",
    "progress_table",
    "random_answer",
    "rate_all",
    "serve_listening",
    "simulate_raters",
]
