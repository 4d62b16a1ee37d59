"""A scripted rater over HTTP (aiohttp client): what the rater page does, for tests and the benchmark."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import aiohttp

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def random_answer(rng: random.Random) -> Answer:
    """Answers of a rater who clicks at random (valid values)."""

    def answer(trial: dict[str, Any]) -> dict[str, Any]:
        if trial["kind"] == "rate":
            return {"naturalness": rng.randint(1, 5), "meaningfulness": rng.randint(1, 5)}
        if trial["kind"] == "ab":
            return {"choice": rng.choice(["A", "B", "same"])}
        return {"choice": rng.choice(["1", "2", "3"])}

    return answer


async def rate_all(
    session: aiohttp.ClientSession,
    base: str,
    rater: str,
    answer: Answer,
    token: str | None = None,
    limit: int | None = None,
    fetch_clips: bool = True,
) -> list[dict[str, Any]]:
    """Go through ``rater``'s trials as the page does (state, clips, answer); returns what was sent.

    Stops after ``limit`` answers, or when the rater is finished (the last state, with the completion
    code, is the last item, under ``"final"``).
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
        body = {"rater": rater, "trial": trial["id"], **answer(trial)}
        async with session.post(f"{base}api/answer", json=body, params=auth) as res:
            new = await res.json()
            if res.status != 200:
                raise AssertionError(f"{rater}: answer refused ({res.status}): {new}")
        sent.append({**body, "kind": trial["kind"], "index": trial["index"]})
        state = new
    sent.append({"final": state})
    return sent
