"""Keyword arguments passed on to another function, checked before any work starts.

A function that takes ``**options: Unpack[SomeOptions]`` and hands them to another one would only
fail on a misspelt name once it reaches that call, after the slow part (a built task set, a loaded
model). :func:`check_keywords` fails at once, as Python does for a named parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_keywords(function: str, given: Mapping[str, Any], options: Any) -> None:
    """TypeError if ``given`` holds a name that the TypedDict ``options`` does not declare."""
    known = options.__required_keys__ | options.__optional_keys__
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
