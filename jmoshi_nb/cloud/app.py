"""# J-Moshi on a Modal GPU: a conversation server, cached weights, and a sweep worker

One file holds everything Modal runs for the kit, infrastructure next to code, in Modal's example style:

* an **Image** with pinned CUDA torch, moshi and this package;
* a **Volume** that caches the Hugging Face downloads (``HF_HOME`` lives on it), filled by
  ``download_weights`` once, then read by every container;
* ``JMoshiServer``: a GPU class (A10G by default) that loads the engine once per container, warms it
  up, and serves the kit's own aiohttp ``ChatServer`` (``/api/chat``, ``/api/health``, the talk page
  at ``/``) as a Modal web server, so ``jmoshi_nb.connect`` and every notebook tool talk to it
  unchanged, behind a token. The talk page's settings, recording and rating form are the deploy's
  (``cloud.talk_deploy``: ``jmoshi-nb modal deploy --configs ... --record NAME --rate``); the
  recordings go to a second Volume, ``jmoshi-nb-talk``, committed after each conversation and rating;
* ``SweepWorker``: a GPU class that runs one sweep job (config + audio) on the engine directly and
  returns the recording as plain data (``jobs.run_jobs(..., executor="modal")`` fans jobs out).

Deploy it (or let ``jmoshi_nb.start(backend="modal")`` run it ephemerally)::

    modal deploy -m jmoshi_nb.cloud.app               # or: jmoshi-nb modal deploy
    JMOSHI_MODAL_GPU=L40S modal deploy -m jmoshi_nb.cloud.app

Settings are read from ``JMOSHI_MODAL_*`` environment variables when this module is imported, i.e.
at deploy time, and copied into the image's environment so that the containers import the same values.

The container-side logic lives in plain functions (``load_to_cpu``, ``build_engine``,
``start_chat_server``, ``fetch_weights``, ``sweep_job``) that run anywhere: the tests run them on CPU
with the tiny checkpoint. Importing this module needs ``modal`` installed but no Modal account and no
network: Modal objects are only declared here, and resolved when an app is run or deployed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import modal

from ..core.pins import MOSHI_VERSION, PYTHON_VERSION, TORCH_INDEX_URL, TORCH_VERSION, torch_compile_enabled
from ..remote import settings as names
from ..serve.backends import LocalServer
from .talk_deploy import TalkDeploy

if TYPE_CHECKING:
    from ..model.batch_engine import BatchEngine
    from ..model.checkpoints import ResolvedModel
    from ..model.engine import Engine
    from ..model.engine_pool import EnginePool

# ## Settings
#
# Read at deploy time; each has a ``JMOSHI_MODAL_<NAME>`` environment variable.

APP_NAME = os.environ.get(names.ENV["app"], names.APP_NAME)
GPU = os.environ.get(names.ENV["gpu"], names.GPU)
MODEL = os.environ.get(names.ENV["model"], names.MODEL)
REVISION = os.environ.get(names.ENV["revision"]) or None

# Pinned versions of the image: torch and moshi are those the tests run (jmoshi_nb/core/pins.py, which
# scripts/setup.sh reads too). moshi 0.2.13 loads the J-Moshi weights (saved with moshi <= 0.2.2)
# through its state-dict hook that splits the old fused attention projections: see docs/modal.md.
KIT_REQUIREMENTS = (  # the versions the kit's tests ran with
    "numpy==2.2.6",
    "safetensors==0.7.0",
    "huggingface-hub==0.36.2",
    "hf-xet==1.8.0",  # the Hub's fast transfer backend for the 16 GB download
    "einops==0.8.2",
    "sentencepiece==0.2.3",
    "sphn==0.2.1",
    "aiohttp==3.11.18",
    "tqdm==4.70.1",
    "pydantic==2.14.4",
    "pyyaml==6.0.4",
    "soundfile==0.14.0",
    "scipy==1.17.1",
)

PORT = 8998
HOST = "0.0.0.0"  # Modal's proxy reaches the web server on the container's interface
DEVICE = "cuda"  # the tests run the classes' methods with "cpu"
CACHE_PATH = "/cache"  # the Volume's mount point
HF_HOME = f"{CACHE_PATH}/huggingface"  # so the Hub cache (hub/, xet/) and the kit's cache persist
KIT_CACHE = f"{CACHE_PATH}/jmoshi-nb"
VOLUME_NAME = os.environ.get(names.ENV["volume"], names.VOLUME_NAME)
TOKEN_SECRET_NAME = os.environ.get(names.ENV["token_secret"], names.TOKEN_SECRET_NAME)
HF_SECRET_NAME = os.environ.get(names.ENV["hf_secret"], names.HF_SECRET_NAME)  # "" = no secret
TOKEN_ENV = names.TOKEN_ENV
MIN_TOKEN_CHARS = names.MIN_TOKEN_CHARS

# An idle container keeps its GPU (and its loaded, warmed-up engine) this long after the last request.
# A research session is bursts: talk, listen back, change a parameter, talk again a few minutes later.
# Five idle minutes cost about 9 cents on an A10G and spare a ~1-2 minute cold start each time;
# ``ModalServer.stop()`` releases the GPU at once anyway, so this only bounds a forgotten session.
SCALEDOWN_WINDOW_S = 300
# Each WebSocket conversation is one Modal input; ``timeout`` is the longest one allowed. An hour is
# longer than any dialogue experiment and still cuts a stuck or forgotten connection.
TIMEOUT_S = 3600
# Container start (enter hooks: weights from the Volume to the GPU, warm-up, CUDA graph capture) on a
# cold worker: a few minutes at worst; the generous bound also covers a first download into the Volume
# when ``download_weights`` was skipped.
STARTUP_TIMEOUT_S = 1200
# One conversation per container: ChatServer holds one session at a time and answers a second client
# with its "busy" error. Modal may route up to MAX_INPUTS requests to one container, so that a health
# check during a conversation is answered (instead of starting another GPU) and an extra client gets
# that clear "busy" message instead of waiting in a queue; TARGET_INPUTS=1 makes the autoscaler add a
# container per conversation when MAX_CONTAINERS allows more than one.
# With JMOSHI_MODAL_MAX_SESSIONS=N (> 1) a container serves N conversations at once as slots of one
# batched engine (``multi_server``): Modal routes up to N of them (plus room for health checks and a
# "busy" answer) to a container before the autoscaler adds another. The default stays 1 until the
# batched engine is measured on the GPU (benchmarks/batch_throughput.py).
MAX_SESSIONS = int(os.environ.get(names.ENV["max_sessions"], "1"))
MAX_INPUTS = MAX_SESSIONS + 3
TARGET_INPUTS = MAX_SESSIONS
MAX_CONTAINERS = int(os.environ.get(names.ENV["max_containers"], "1"))  # GPU spending cap (personal use)
MEMORY_MIB = 32 * 1024  # host RAM: the bf16 weights sit in CPU memory before the snapshot / the GPU copy
# CPU cores reserved for each GPU container (Modal's default is 0.125, shared with other tenants): one
# core drives the GPU (the engine's Python loop, CUDA graph launches, the copy of each frame's audio to
# the host), the other serves the event loop (Opus decode/encode of every stream, the WebSocket,
# metrics, recordings written to disk). Without the reservation a busy neighbour delays frames.
GPU_CPU_CORES = 2.0

# CPU memory snapshots (deployed apps only; ephemeral runs just run both enter phases): the snapshot
# holds imported torch/moshi/the kit and the weights in CPU memory, so a new container skips ~20k file
# reads of the imports and the safetensors parse, then moves the weights to the GPU and warms up.
# GPU state (CUDA graphs) cannot be in a CPU snapshot, so warm-up runs after every restore.
# Off (``--no-snapshot``): the classes' load step is a plain enter method, run before warm-up.
SNAPSHOT = os.environ.get(names.ENV["snapshot"], "1") == "1"
TORCH_COMPILE = torch_compile_enabled()  # JMOSHI_MODAL_TORCH_COMPILE=1: see pins.torch_compile_enabled
# Modal's proxy auth (Modal-Key/Modal-Secret headers) in front of the kit's own token. Off by default:
# the kit's client and browsers' WebSocket API cannot send those headers.
PROXY_AUTH = os.environ.get(names.ENV["proxy_auth"], "0") == "1"

# The talk page at ``/``: its settings, recording and rating form, as deployed (``cloud.talk_deploy``).
TALK = TalkDeploy.from_env(os.environ.get(names.ENV["talk"], ""))
TALK_VOLUME_NAME = os.environ.get(names.ENV["talk_volume"], names.TALK_VOLUME_NAME)
TALK_PATH = "/talk"  # the talk Volume's mount point (server containers, with --record only)

SWEEP_TIMEOUT_S = 1800  # one sweep job: an input of up to ~20 minutes of audio at real-time speed
SWEEP_SCALEDOWN_WINDOW_S = 60  # sweep containers idle briefly between batches, then free their GPU
SWEEP_MAX_CONTAINERS = int(os.environ.get(names.ENV["sweep_max_containers"], "4"))
DOWNLOAD_TIMEOUT_S = 3600

SETTINGS_ENV = names.app_environment(
    app=APP_NAME,
    gpu=GPU,
    model=MODEL,
    revision=REVISION or "",
    volume=VOLUME_NAME,
    token_secret=TOKEN_SECRET_NAME,
    hf_secret=HF_SECRET_NAME,
    max_containers=MAX_CONTAINERS,
    max_sessions=MAX_SESSIONS,
    sweep_max_containers=SWEEP_MAX_CONTAINERS,
    snapshot=SNAPSHOT,
    torch_compile=TORCH_COMPILE,
    proxy_auth=PROXY_AUTH,
    talk=TALK.to_env(),
    talk_volume=TALK_VOLUME_NAME,
)

# ## The image

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .apt_install("gcc", "libc6-dev")  # for torch.compile's Triton kernels when JMOSHI_MODAL_TORCH_COMPILE=1
    .uv_pip_install(f"torch=={TORCH_VERSION}", index_url=TORCH_INDEX_URL)
    .uv_pip_install(*KIT_REQUIREMENTS)
    # moshi declares bitsandbytes, sounddevice and a torch range of its own: the engine needs none of
    # them, so it goes in without dependencies on top of the pinned set above (as scripts/setup does).
    .uv_pip_install(f"moshi=={MOSHI_VERSION}", extra_options="--no-deps")
    .env(
        {
            "HF_HOME": HF_HOME,
            "JMOSHI_NB_CACHE": KIT_CACHE,
            # GPU containers read the weights from the Volume only: no Hub round trips at start, no
            # dependence on the Hub being up, no Hugging Face token in the long-running server.
            # download_weights, which fills the Volume, turns this off for itself.
            "HF_HUB_OFFLINE": "1",
            "HF_XET_HIGH_PERFORMANCE": "1",
            "HF_XET_CHUNK_CACHE_SIZE_BYTES": "0",  # no second copy of the 16 GB in the Volume's xet cache
            # Set explicitly (empty = enabled) so that moshi's choice does not depend on whether a GPU
            # was visible when moshi was first imported (it is not, while a memory snapshot is made).
            "NO_TORCH_COMPILE": "" if TORCH_COMPILE else "1",
            **SETTINGS_ENV,
        }
    )
    .add_local_python_source("jmoshi_nb", ignore=["**/__pycache__/**", "**/*.pyc"])
)

app = modal.App(APP_NAME, image=image)

# ## Storage and secrets

hf_cache = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
volumes: dict[str, modal.Volume] = {CACHE_PATH: hf_cache}
token_secret = modal.Secret.from_name(TOKEN_SECRET_NAME, required_keys=[TOKEN_ENV])
hf_secrets: list[modal.Secret] = [modal.Secret.from_name(HF_SECRET_NAME)] if HF_SECRET_NAME else []
talk_volume = modal.Volume.from_name(TALK_VOLUME_NAME, create_if_missing=True)  # mounted with --record only


# ## Plain functions: the container's work, callable anywhere (tests run them on CPU, tiny model)


@dataclass
class LoadedModel:
    """A checkpoint's parts in memory (CPU before a snapshot), not yet an engine."""

    resolved: ResolvedModel
    mimi: Any
    lm: Any
    tokenizer: Any
    dtype: Any


@contextlib.contextmanager
def no_cuda_probe() -> Iterator[None]:
    """Keep CUDA uninitialised while a CPU memory snapshot is prepared.

    ``jmoshi_nb.model.moshi_api`` asks ``torch.cuda.is_available()`` when first imported; in the snapshot phase
    no GPU is attached, and initialising the CUDA runtime there can leave the restored process unable
    to use the GPU. ``NO_TORCH_COMPILE`` is set explicitly in the image, so the answer is not needed.
    """
    import torch

    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.cuda.is_available = real  # type: ignore[assignment]


def load_to_cpu(model: str = MODEL, revision: str | None = REVISION, dtype_name: str = "bfloat16") -> LoadedModel:
    """Resolve the checkpoint (downloading into ``HF_HOME`` if needed) and load it into CPU memory."""
    import torch

    from ..model.checkpoints import resolve

    try:
        resolved = resolve(model, revision=revision)
    except Exception as exc:
        if type(exc).__name__ == "LocalEntryNotFoundError":  # HF_HUB_OFFLINE and not in the cache
            raise RuntimeError(
                f"the weights of {model!r} are not in the Volume '{VOLUME_NAME}': run `jmoshi-nb modal "
                f"download-weights --model {model}` (ModalServer and sweeps do this before starting a GPU)"
            ) from exc
        raise
    dtype = getattr(torch, dtype_name)
    info = resolved.info
    return LoadedModel(
        resolved=resolved,
        mimi=info.get_mimi(device="cpu"),
        lm=info.get_moshi(device="cpu", dtype=dtype),
        tokenizer=info.get_text_tokenizer(),
        dtype=dtype,
    )


def load_before_snapshot() -> LoadedModel:
    """The app's model in CPU memory, CUDA untouched: the GPU classes' ``load`` step (no GPU attached yet)."""
    with no_cuda_probe():
        return load_to_cpu(MODEL, REVISION)


def build_engine(
    loaded: LoadedModel, device: str, seed: int | None = 42, warmup: bool = True, sessions: int | None = None
) -> Engine | BatchEngine:
    """Move the parts to ``device`` and make a warmed-up engine (``engine_factory.engine_from_parts``).

    ``sessions`` (default ``MAX_SESSIONS``): conversation slots (> 1: a ``BatchEngine``).
    """
    from ..model.engine_factory import engine_from_parts

    slots = MAX_SESSIONS if sessions is None else sessions
    return engine_from_parts(
        loaded.resolved, loaded.mimi, loaded.lm, loaded.tokenizer, device, slots, seed=seed, warmup=warmup
    )


def container_token() -> str:
    """The token clients must present; the server never runs without one on a public URL."""
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise RuntimeError(
            f"{TOKEN_ENV} is missing or shorter than {MIN_TOKEN_CHARS} characters: create the Modal secret with "
            f"`modal secret create {TOKEN_SECRET_NAME} {TOKEN_ENV}=<random token>` "
            "(jmoshi-nb modal deploy makes one) and deploy again"
        )
    return token


_TALK_COMMIT_LOCK = threading.Lock()


def commit_talk_volume() -> None:
    """``Volume.commit()`` of the talk Volume, one at a time (conversations may end together)."""
    with _TALK_COMMIT_LOCK:
        talk_volume.commit()


def talk_page_options() -> dict[str, Any]:
    """The deployed talk page's options (``serve.server.configure``), recording onto the Volume at ``TALK_PATH``.

    Each finished conversation and each rating commits the Volume (``commit_talk_volume``, looked up
    when it runs, as ``TALK`` and ``TALK_PATH`` are, so tests can put stand-ins in their place).
    """
    return TALK.page_options(TALK_PATH, commit=lambda: commit_talk_volume())


class ChatServerThread(LocalServer):
    """The kit's server for ``engine`` on a background thread (the web server Modal routes to).

    Besides the server's own routes (the talk page at ``/`` with ``page_options``) it answers
    ``/api/modal`` (token required) with the container's id, so that the client can stop exactly this
    container and release its GPU.
    """

    def __init__(
        self,
        engine: Engine,
        token: str | None,
        host: str = HOST,
        port: int = PORT,
        page_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            host=host, port=port, token=token, engine=engine, name="jmoshi-nb-modal-server", scheme="http",
            routes={"/api/modal": self._modal_info}, page_options=page_options,
        )  # fmt: skip

    def info(self) -> dict[str, Any]:
        return {
            "task_id": os.environ.get("MODAL_TASK_ID"),
            "app": APP_NAME,
            "gpu": GPU,
            "model": self.engine.model.model_id,
            "device": str(self.engine.device),
        }

    async def _modal_info(self, request: Any) -> Any:
        from aiohttp import web

        from ..core.access import token_ok

        if not token_ok(request, self.token):
            return web.json_response({"error": "missing or wrong token"}, status=401)
        return web.json_response(self.info())


def start_chat_server(
    engine: Engine, token: str | None, host: str = HOST, port: int = PORT, page_options: dict[str, Any] | None = None
) -> ChatServerThread:
    """The container's web server, started: the kit's server with the talk page's ``page_options``."""
    return ChatServerThread(engine, token, host, port, page_options).start()


def _hf_access_error(exc: BaseException, model: str) -> RuntimeError | None:
    """Turn the Hub's refusals into one recognisable message (``HF_ACCESS:`` prefix)."""
    try:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover
        return None
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError | RepositoryNotFoundError) or (
        isinstance(exc, HfHubHTTPError) and status in (401, 403)
    ):
        return RuntimeError(
            f"HF_ACCESS: Hugging Face refused {model!r} ({type(exc).__name__}, HTTP {status}). Accept the model's "
            f"terms on its Hugging Face page with your account, then store a read token in the Modal secret "
            f"'{HF_SECRET_NAME}': modal secret create {HF_SECRET_NAME} HF_TOKEN=hf_..."
        )
    return None


def fetch_weights(model: str = MODEL, revision: str | None = REVISION) -> dict[str, Any]:
    """Make sure ``model``'s files are in the Hub cache (``HF_HOME``); report what it took."""
    from pathlib import Path

    from ..model.checkpoints import resolve

    t0 = time.perf_counter()
    before = _cache_bytes()
    try:
        with no_cuda_probe():
            resolved = resolve(model, revision=revision)
    except Exception as exc:
        hf = _hf_access_error(exc, model)
        if hf is not None:
            raise hf from None
        raise
    info = resolved.info
    files = [Path(p) for p in (info.moshi_weights, info.mimi_weights, info.tokenizer) if p is not None]
    return {
        "model": resolved.model_id,
        "location": resolved.location,
        "revision": revision,
        "files": {p.name: p.stat().st_size for p in files if p.exists()},
        "downloaded_bytes": max(0, _cache_bytes() - before),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _cache_bytes() -> int:
    from pathlib import Path

    root = Path(os.environ.get("HF_HOME", HF_HOME))
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


_POOL: EnginePool | None = None


def sweep_pool(device: str | None = None) -> EnginePool:
    """The process's engine for sweep jobs (one at a time: a 7B fills a 24 GB GPU)."""
    global _POOL
    if _POOL is None:
        from ..model.engine_pool import EnginePool

        _POOL = EnginePool(device=device)
    return _POOL


def sweep_job(
    config: dict[str, Any] | list[dict[str, Any]], audio: bytes | list[bytes], name: str | list[str] = ""
) -> dict[str, Any] | list[dict[str, Any]]:
    """One sweep job: ``SessionConfig`` as a dict, audio as ``.npy``/WAV bytes -> recording as plain data.

    Lists are a batch (``run_jobs(..., batch_size=N)``): the jobs run as slots of one batched engine in
    this container and a list of recordings comes back.
    """
    from ..research.jobs import run_job_payload

    return run_job_payload(sweep_pool(), config, audio, name, executor="modal")


# ## Modal functions and classes


@app.function(
    volumes=volumes,
    secrets=hf_secrets,
    env={"HF_HUB_OFFLINE": "0"},
    timeout=DOWNLOAD_TIMEOUT_S,
    cpu=4.0,
    memory=4096,
)
def download_weights(model: str = MODEL, revision: str | None = REVISION) -> dict[str, Any]:
    """Fill the Volume with ``model``'s files (a no-op when they are there). No GPU is billed."""
    result = fetch_weights(model, revision)
    hf_cache.commit()  # make the files visible to containers that start from now on
    return result


@app.function(cpu=0.25, memory=256, timeout=60)
def settings() -> dict[str, str]:
    """The settings this app was deployed with (which model, GPU...), answered by a small CPU container."""
    return dict(SETTINGS_ENV)


def gpu_class_options(idle_s: int, timeout_s: int, max_containers: int) -> dict[str, Any]:
    """``app.cls`` options of a GPU class: the GPU, the weights' Volume, host memory and cores and the
    snapshot setting, which both classes share, plus how long an idle container stays (``idle_s``), the
    longest input (``timeout_s``) and the container cap."""
    return dict(
        gpu=GPU,
        volumes=volumes,
        scaledown_window=idle_s,
        timeout=timeout_s,
        startup_timeout=STARTUP_TIMEOUT_S,
        max_containers=max_containers,
        memory=MEMORY_MIB,
        cpu=GPU_CPU_CORES,
        enable_memory_snapshot=SNAPSHOT,
    )


SERVER_OPTIONS = gpu_class_options(SCALEDOWN_WINDOW_S, TIMEOUT_S, MAX_CONTAINERS) | {"secrets": [token_secret]}
if TALK.record:  # the server records every conversation of the talk page onto its own Volume
    SERVER_OPTIONS["volumes"] = volumes | {TALK_PATH: talk_volume}


@app.cls(**SERVER_OPTIONS)
@modal.concurrent(max_inputs=MAX_INPUTS, target_inputs=TARGET_INPUTS)
class JMoshiServer:
    """One engine per container, loaded once, served over the kit's protocol."""

    @modal.enter(snap=SNAPSHOT)
    def load(self) -> None:
        # Runs before the memory snapshot (deployed apps) or first thing (ephemeral runs, --no-snapshot,
        # where Modal runs both enter methods in the order declared here): no GPU yet.
        container_token()  # fail early, before minutes of loading, if the secret is missing
        self.loaded: LoadedModel | None = load_before_snapshot()

    @modal.enter(snap=False)
    def warm_up(self) -> None:
        # Runs in every container, after a snapshot restore: the GPU is attached now.
        import torch

        if DEVICE == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"no CUDA device in this container (requested gpu={GPU!r})")
        assert self.loaded is not None
        self.engine = build_engine(self.loaded, DEVICE)
        self.loaded = None  # the parts now live on the GPU
        self.server: ChatServerThread | None = None

    @modal.web_server(port=PORT, startup_timeout=60, requires_proxy_auth=PROXY_AUTH)
    def serve(self) -> None:
        # The token is read here, after any snapshot restore, so a rotated secret takes effect.
        self.server = start_chat_server(self.engine, container_token(), host=HOST, port=PORT,
                                        page_options=talk_page_options())  # fmt: skip

    @modal.exit()
    def shutdown(self) -> None:
        if getattr(self, "server", None) is not None:
            self.server.stop()  # type: ignore[union-attr]  # live conversations end, saved as cut short
        if TALK.record:
            commit_talk_volume()


SWEEP_OPTIONS = gpu_class_options(SWEEP_SCALEDOWN_WINDOW_S, SWEEP_TIMEOUT_S, SWEEP_MAX_CONTAINERS)


@app.cls(**SWEEP_OPTIONS)
class SweepWorker:
    """Runs sweep jobs, one at a time per container, on an engine loaded once per container."""

    @modal.enter(snap=SNAPSHOT)  # as JMoshiServer.load: before the snapshot, or first without one
    def load(self) -> None:
        self.loaded: LoadedModel | None = load_before_snapshot()

    @modal.enter(snap=False)
    def warm_up(self) -> None:
        # A sweep job is one conversation: the container's engine is a single one, whatever MAX_SESSIONS
        # (the server's conversations) says; a batch of jobs loads a batched engine of its own size.
        pool = sweep_pool(device=DEVICE)
        if self.loaded is not None:
            pool.put(MODEL, REVISION, build_engine(self.loaded, DEVICE, sessions=1))
            self.loaded = None

    @modal.method()
    def run(
        self, config: dict[str, Any] | list[dict[str, Any]], audio: bytes | list[bytes], name: str | list[str] = ""
    ) -> dict[str, Any] | list[dict[str, Any]]:
        return sweep_job(config, audio, name)


@app.local_entrypoint()
def main(model: str = MODEL) -> None:
    """``modal run -m jmoshi_nb.cloud.app``: fill the Volume, then print the server's URL."""
    print(download_weights.remote(model, REVISION))
    print("chat URL:", JMoshiServer().serve.get_web_url())
