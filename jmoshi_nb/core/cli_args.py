"""Command-line building blocks shared by ``jmoshi-nb`` and its ``bench`` commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import SessionConfig, load_config


def add_command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` of ``sub`` (an ``add_subparsers`` result) that runs ``func(args)``."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=func)
    return p


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """Command-line flags for a session's config: sampling, seed, ``--config FILE`` (flags override it)."""
    p.add_argument("--temp", type=float, help="audio temperature")
    p.add_argument("--temp-text", type=float, help="text temperature")
    p.add_argument("--top-k", type=int, help="audio top-k")
    p.add_argument("--top-k-text", type=int, help="text top-k")
    p.add_argument("--seed", type=int, help="sampling seed (same seed + same input = same tokens)")
    p.add_argument("--config", type=Path, help="a saved config (YAML or JSON); flags override it")


def config_from_arguments(args: argparse.Namespace, model: str | None) -> SessionConfig:
    """The config the flags of ``add_config_arguments`` describe (``model`` replaces the file's if given)."""
    config = load_config(args.config) if args.config else SessionConfig()
    changes = {
        k: v
        for k, v in {
            "temp": args.temp,
            "temp_text": args.temp_text,
            "top_k": args.top_k,
            "top_k_text": args.top_k_text,
        }.items()
        if v is not None
    }
    data = config.model_dump()
    data["sampling"] = config.sampling.updated(**changes).model_dump()
    if model is not None:
        data["model"] = model
    if args.seed is not None:
        data["seed"] = args.seed
    return SessionConfig.from_dict(data)
