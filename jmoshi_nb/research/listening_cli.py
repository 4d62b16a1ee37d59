"""``jmoshi-nb listen create | serve | verify | summary``: a crowd listening test from a terminal."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ..core.access import is_loopback, link_host
from ..core.cli_args import add_command


def _systems(pairs: list[str]) -> dict[str, list[str]]:
    systems: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise ValueError(f"--system {pair!r}: write NAME=DIR (a recording folder, a folder of them, audio files)")
        systems.setdefault(name.strip(), []).append(folder.strip())
    return systems


def cmd_create(args: argparse.Namespace) -> int:
    from .listening import ListeningTest
    from .listening_quality import QualityControls

    quality = QualityControls(
        traps=args.traps,
        gold_bad=args.gold_bad,
        gold_good=tuple(args.gold_good or ()),
        headphone_trials=args.headphone_trials,
        full_play=not args.no_full_play,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        test = ListeningTest.create(_systems(args.system), out=args.out, quality=quality, ab=args.ab,
                                    seed=args.seed, max_s=args.max_s)  # fmt: skip
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    kinds = [k.kind for k in test.controls]
    print(f"listening test: {args.out}")
    print(f"  systems: {', '.join(test.systems)}; clips: {len(test.clips)}; trials per rater: {len(test.trials('x'))}")
    print(f"  controls: {kinds.count('trap')} trap, {kinds.count('gold')} gold, {kinds.count('headphone')} headphone")
    print(f"serve it: jmoshi-nb listen serve {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .listening import ListeningTest
    from .listening_server import serve_listening

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        test = ListeningTest.open(args.test)
    for path, why in test.skipped.items():
        print(f"warning: clip {path} cannot be used ({why}); the test serves the rest", file=sys.stderr)
    del caught
    if not is_loopback(args.host) and not args.token:
        print(
            f"warning: serving on {args.host} without --token: anyone who reaches this port can rate "
            "/ トークンなしで公開しています",
            file=sys.stderr,
        )
    shown = link_host(args.host)
    link = f"http://{shown}:{args.port}/" + (f"?token={args.token}" if args.token else "")
    print(f"rater page: {link}", flush=True)
    print(f"ratings:    {test.ratings}/<rater>.csv (one file per rater, each answer fsynced)", flush=True)
    serve_listening(test, host=args.host, port=args.port, token=args.token)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .listening import ListeningTest

    test = ListeningTest.open(args.test)
    ok = test.verify_code(args.rater, args.code)
    print(f"{args.rater}: {'valid' if ok else 'NOT valid'} completion code")
    return 0 if ok else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from .listening import mos_table, preference_table, read_ratings
    from .listening_quality import screening_report

    df = read_ratings(args.test, screen=not args.no_screen)
    print(screening_report(df))
    if df.empty:
        print("評価が残っていません / no ratings left")
        return 0
    print(mos_table(df).round(2).to_string())
    pref = preference_table(df)
    if len(pref):
        print(pref.round(3).to_string())
    return 0


def add_listen_commands(sub: Any) -> None:
    """Add ``listen create | serve | verify | summary`` to the ``jmoshi-nb`` CLI."""
    listen = sub.add_parser("listen", help="a listening test for remote raters: create, serve, verify, summary")
    lsub = listen.add_subparsers(dest="listen_command", required=True)

    p = add_command(lsub, "create", cmd_create, "save a listening test (clips + quality controls) in a folder")
    p.add_argument("--system", action="append", required=True, metavar="NAME=DIR",
                   help="a system and its clips (repeat; the same NAME twice adds folders)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the test's folder (new)")
    p.add_argument("--ab", action="store_true", help="add A/B trials (pairs of systems on the same input)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-s", type=float, default=30.0, help="trim clips to this many seconds (default 30)")
    p.add_argument("--traps", type=int, default=1, help="trapping clips (default 1; 0: none)")
    p.add_argument("--gold-bad", type=int, default=1, help="degraded gold clips, expected 1-2 (default 1)")
    p.add_argument("--gold-good", action="append", metavar="FILE", help="a known-good reference, expected 4-5")
    p.add_argument("--headphone-trials", type=int, default=6, help="antiphase headphone-check trials (default 6)")
    p.add_argument("--no-full-play", action="store_true", help="let raters answer before the clip ends")

    p = add_command(lsub, "serve", cmd_serve, "serve the rater page of a saved test")
    p.add_argument("test", type=Path, help="the test's folder (listen create / ListeningTest.create(out=))")
    p.add_argument("--port", type=int, default=8999)
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default); 0.0.0.0 to reach it from others")
    p.add_argument("--token", help="raters' links carry it; every request must present it")

    p = add_command(lsub, "verify", cmd_verify, "check a rater's completion code (exit 1 if wrong)")
    p.add_argument("test", type=Path)
    p.add_argument("rater")
    p.add_argument("code")

    p = add_command(lsub, "summary", cmd_summary, "MOS and A/B tables of a test's ratings, screened")
    p.add_argument("test", type=Path)
    p.add_argument("--no-screen", action="store_true", help="keep the raters who failed a quality control")


__all__ = ["add_listen_commands"]
