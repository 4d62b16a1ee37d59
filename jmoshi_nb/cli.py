"""``jmoshi-nb``: serve a model, run a WAV through a session, sweep a grid, build the tiny checkpoint, quickstart."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .core.access import is_loopback, link_host
from .core.cli_args import add_command, add_config_arguments, config_from_arguments
from .core.config import ConfigError, SessionConfig


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: one conversation, or ``--max-sessions N`` at once as slots of one batched engine."""
    from .model.engine import MAX_SLOTS, check_slots
    from .model.engine_factory import load_engine
    from .serve.backends import serve_forever

    config = config_from_arguments(args, args.model)
    options, model = _page_options(args, config)  # every bad option is refused before the model loads
    if model is not None:
        config = SessionConfig.from_dict({**config.model_dump(), "model": model})
    slots = check_slots(args.max_sessions, MAX_SLOTS, "--max-sessions")
    held = f" with {slots} conversation slots" if slots > 1 else ""
    print(f"loading {config.model}{held} ...", flush=True)
    try:
        engine = load_engine(
            config.model, slots, revision=args.revision, device=args.device, sampling=config.sampling, seed=config.seed
        )
    except ConfigError as exc:
        raise ConfigError(f"--max-sessions {slots}: {exc}") from None
    d = engine.describe()
    at_once = f", up to {slots} conversations at once" if slots > 1 else ""
    print(
        f"serving {d['model']} on {d['device']} ({d['dtype']}) at ws://{args.host}:{args.port}/api/chat{at_once}",
        flush=True,
    )
    _print_page(args)
    serve_forever(engine, host=args.host, port=args.port, token=args.token, **options)
    return 0


PUBLIC_HOST_WARNING = (
    "warning: --host {host} serves beyond this computer: whoever holds the link (and the token) can send "
    "their microphone to the model and hear it. Set --token, and share the link only with participants."
)


def _page_options(args: argparse.Namespace, config: SessionConfig) -> tuple[dict[str, object], str | None]:
    """The talk page's options from ``serve``'s flags (ConfigError for bad ones), and the model the
    ``--configs`` files name (None: the usual ``--model``/``--config``)."""
    from .serve.record import ServerRecorder
    from .serve.settings import Setting, SettingAssigner, load_settings, neutral_label

    if not is_loopback(args.host):
        print(PUBLIC_HOST_WARNING.format(host=args.host), file=sys.stderr, flush=True)
    options: dict[str, object] = {"show_controls": args.show_controls, "rate": args.rate}
    model = None
    if args.configs:
        if args.config:
            raise ConfigError("--config and --configs: give one setting (--config) or several (--configs), not both")
        settings = load_settings(args.configs, args.model)
        options["assigner"] = SettingAssigner(settings, args.assign)
        model = settings[0].config.model
    elif args.config:  # one setting: the file with the flags' changes, recorded with each conversation
        options["assigner"] = SettingAssigner([Setting(0, neutral_label(0), config, str(args.config))])
    if args.rate and not args.record:
        raise ConfigError("--rate needs --record DIR: each rating is stored beside its conversation's recording")
    if args.record:
        options["recorder"] = ServerRecorder(args.record)
    return options, model


def _print_page(args: argparse.Namespace) -> None:
    host = link_host(args.host)
    link = f"http://{host}:{args.port}/" + ("?token=<token>" if args.token else "")
    print(f"talk page: {link}", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .research.runner import run_wav

    config = config_from_arguments(args, args.model)
    out = args.out or Path("runs") / Path(args.input).stem
    rec = run_wav(args.input, config, url=args.url, token=args.token, realtime=not args.fast, out=out)
    _print_summary(rec, out)
    return 0


MAX_JOBS_UNASKED = 10_000  # a sweep of more jobs runs only with --yes


def read_grid(path: Path) -> dict[str, list]:
    """``GRID.yaml``: the mapping ``jmoshi_nb.sweep`` takes as ``grid`` (e.g. ``temp: [0.6, 0.9]``)."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such grid file")
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not grid:
        raise ConfigError(f"{path}: the grid is empty: give at least one parameter and its values ('temp: [0.6, 0.9]')")
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: a grid is a mapping of parameters to lists of values, got {type(grid).__name__}")
    return grid


def cmd_sweep(args: argparse.Namespace) -> int:
    """``sweep GRID.yaml INPUTS... --out DIR``: every setting of the grid on every input, and DIR/sweep.csv."""
    from .core.config import load_config
    from .model.engine_factory import batch_slots
    from .research.sweeps import check_grid, sweep

    grid = read_grid(args.grid)
    try:
        settings = check_grid(grid)
    except ConfigError as exc:
        raise ConfigError(f"{args.grid}: {exc}") from None
    missing = [str(p) for p in args.inputs if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such input file: {', '.join(missing)}")
    try:
        batch_slots(args.batch_size, 1)
    except ConfigError as exc:
        raise ConfigError(f"--batch-size {args.batch_size}: {exc}") from None
    base = load_config(args.config) if args.config else SessionConfig()
    if args.model is not None:
        base = SessionConfig.from_dict({**base.model_dump(), "model": args.model})
    jobs = settings * len(args.inputs)
    if jobs > MAX_JOBS_UNASKED and not args.yes:
        raise ConfigError(
            f"{args.grid}: {settings} settings x {len(args.inputs)} inputs = {jobs:,} jobs, more than "
            f"{MAX_JOBS_UNASKED:,}: pass --yes to run them all"
        )
    print(f"sweep: {settings} settings x {len(args.inputs)} inputs = {jobs} jobs on {base.model} ({args.executor})")
    df = sweep(grid, [str(p) for p in args.inputs], base, executor=args.executor, out_dir=args.out,
               progress=True, batch_size=args.batch_size)  # fmt: skip
    table = args.out / "sweep.csv"
    df.to_csv(table, index=False)
    print(f"recordings: {args.out}/<run>  table: {table} ({len(df)} rows)")
    return 0


def cmd_textgrid(args: argparse.Namespace) -> int:
    from .core.recording import Recording, is_recording_folder
    from .research.textgrid import TEXTGRID_NAME, export_textgrids, save_textgrid

    folder = Path(args.recording)
    if is_recording_folder(folder) or args.out is not None:
        out = save_textgrid(Recording.load(folder), args.out or folder / TEXTGRID_NAME)
        print(f"TextGrid: {out}")
        return 0
    for out in export_textgrids(folder).values():  # a sweep or benchmark run: every recording below
        print(f"TextGrid: {out}")
    return 0


def cmd_make_tiny(args: argparse.Namespace) -> int:
    from .model.tiny import make_tiny

    out = make_tiny(args.directory, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny checkpoint in {out}")
    for f in sorted(out.iterdir()):
        print(f"  {f.name:24s} {f.stat().st_size:>10,d} bytes")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Synthesize Japanese speech, talk to the model through a real server, save and summarise."""
    from .research.runner import run_wav
    from .research.speech import speech_wav

    out = Path(args.out)
    wav = speech_wav(out.parent / "quickstart_input.wav")
    config = SessionConfig(model=args.model, name="quickstart")
    print(f"input: {wav} (Japanese speech, pyopenjtalk)")
    print(f"model: {config.model} (use --model j-moshi-ext on a GPU machine)")
    rec = run_wav(wav, config, realtime=not args.fast, out=out)
    _print_summary(rec, out)
    try:
        from .research.plots import plot_recording

        fig = plot_recording(rec)
        fig.savefig(out / "overview.png", dpi=110)
        print(f"plot:       {out / 'overview.png'}")
    except ImportError:
        print("plot:       install the notebook extra for plots: pip install -e '.[notebook]'")
    return 0


def _print_summary(rec, out: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    totals = np.array([m["total_ms"] for m in rec.metrics]) if rec.metrics else np.zeros(1)
    print(f"recording:  {out}  ({rec.duration:.1f} s, {len(rec.metrics)} frames)")
    print(f"frame time: p50 {np.percentile(totals, 50):.1f} ms, p99 {np.percentile(totals, 99):.1f} ms (budget 80 ms)")
    text = rec.transcript()
    print(f"model text: {text[:120]}{'…' if len(text) > 120 else ''}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jmoshi-nb", description="J-Moshi research kit")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(sub, "serve", cmd_serve, "serve a model at /api/chat (moshi protocol)")
    p.add_argument(
        "--model",
        default=None,
        help="tiny (default) | j-moshi-ext | j-moshi | moshiko | <local dir> | <hf repo id>",
    )
    p.add_argument("--revision", help="Hugging Face revision (branch, tag or commit)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8998)
    p.add_argument("--device", help="cuda or cpu (default: cuda if available)")
    p.add_argument("--token", help="require this token from clients (?token= or Bearer)")
    p.add_argument(
        "--max-sessions",
        type=int,
        default=1,
        help="conversations served at once on one model, as slots of a batched engine (default 1)",
    )
    add_config_arguments(p)
    p.add_argument(
        "--configs",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="several settings (YAML/JSON) of one model, one given to each conversation, blind (System 1, 2...)",
    )
    p.add_argument(
        "--assign",
        choices=("random", "balanced"),
        default="balanced",
        help="how --configs are given out: balanced (fewest so far, default) or random",
    )
    p.add_argument("--record", type=Path, metavar="DIR", help="record every conversation in DIR/<participant>/")
    p.add_argument("--rate", action="store_true", help="the talk page asks for a 1-5 rating after each conversation")
    p.add_argument("--show-controls", action="store_true", help="the talk page shows sampling sliders (a demo)")

    p = add_command(sub, "run", cmd_run, "stream a WAV file through a session and save the recording")
    p.add_argument("input", type=Path, help="input audio file (any rate; mixed to mono, resampled to 24 kHz)")
    p.add_argument("--out", type=Path, help="recording folder (default runs/<input name>)")
    p.add_argument("--fast", action="store_true", help="as fast as the engine goes instead of real time")
    p.add_argument("--url", help="a running server (default: start a local one for --model)")
    p.add_argument("--token", help="token for --url")
    p.add_argument("--model", default=None, help="model for the local server (default tiny)")
    add_config_arguments(p)

    p = add_command(sub, "sweep", cmd_sweep, "run a grid of settings over WAV files; recordings + sweep.csv")
    p.add_argument("grid", type=Path, help="GRID.yaml: parameters and their values, e.g. 'temp: [0.6, 0.9]'")
    p.add_argument("inputs", type=Path, nargs="+", help="input audio files (any rate; mixed to mono, 24 kHz)")
    p.add_argument("--out", type=Path, required=True, help="folder for the recordings and sweep.csv")
    p.add_argument("--config", type=Path, help="base config (YAML or JSON) the grid changes")
    p.add_argument("--model", default=None, help="model (default: the base config's, tiny)")
    p.add_argument("--batch-size", type=int, default=1, help="runs at once as slots of one batched engine")
    p.add_argument("--executor", choices=("local", "modal"), default="local", help="this machine or Modal GPUs")
    p.add_argument("--yes", action="store_true", help=f"run a grid of more than {MAX_JOBS_UNASKED:,} jobs")

    help_tg = "write a Praat TextGrid of a recording (or of every recording below DIR)"
    p = add_command(sub, "textgrid", cmd_textgrid, help_tg)
    p.add_argument("recording", type=Path, help="recording folder, or a folder of them (a sweep, a benchmark run)")
    p.add_argument("--out", type=Path, help="TextGrid file (default RECORDING/recording.TextGrid)")

    p = add_command(sub, "make-tiny", cmd_make_tiny, "write the tiny offline checkpoint (moshi format) into DIR")
    p.add_argument("directory", type=Path)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")

    help_qs = "talk to the model with synthesized Japanese speech, save, summarise"
    p = add_command(sub, "quickstart", cmd_quickstart, help_qs)
    p.add_argument("--model", default="tiny")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--fast", action="store_true")

    from .research.bench.cli import add_bench_commands

    add_bench_commands(sub)

    from .research.listening_cli import add_listen_commands

    add_listen_commands(sub)

    try:
        from .cloud.cli import add_modal_commands
    except ImportError:
        pass
    else:
        add_modal_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "seed", None) is None and args.command == "make-tiny":
        from .model.tiny import DEFAULT_SEED

        args.seed = DEFAULT_SEED
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"jmoshi-nb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
