"""# The rater page on Modal: a saved listening test served to crowd raters from one CPU container

``jmoshi-nb modal listen TEST`` uploads the test (``test.json``, ``clips/``, ``controls/``; never
``ratings/``) to a Modal **Volume** and deploys this app; raters open the printed link. The answers
are written to ``ratings/<rater>.csv`` on the Volume, exactly as on a local disk, and come back with
``jmoshi-nb modal listen TEST --fetch`` (or ``modal volume get``).

**Why a Volume and not a Dict.** The page serves every rater from **one** container
(``max_containers=1``; aiohttp answers hundreds of raters at once: ``benchmarks/listening_raters.py``),
so each rater's CSV has a single writer, and no two containers ever write the same file (Modal
Volumes resolve concurrent commits of one file as last-write-wins). Each answer is appended and
fsynced, then ``Volume.commit()`` persists it before the next trial is returned: a container that
stops loses nothing. The files are the kit's own ratings CSVs, so ``read_ratings`` reads them as they
are. A Modal Dict would make concurrent writers safe per key, but its entries expire after 7 days
without a read or write (Modal's documentation), it holds pickled values rather than files, and
would need a second reader for its rows; a crowd test that runs for weeks must not lose answers.

The token is the test's own (``listening_quality.page_token``, derived from the test's secret), not
the GPU server's: a rater's link opens this page and nothing else. The container-side work is a
plain function, ``start_rater_page``, that the tests run on 127.0.0.1 with a fake commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import modal

from ..core.pins import PYTHON_VERSION
from ..remote import settings as names
from ..research.listening import ListeningTest
from ..research.listening_quality import page_token
from ..research.listening_server import RaterServer

LISTEN_APP_NAME = os.environ.get("JMOSHI_MODAL_LISTEN_APP", names.LISTEN_APP_NAME)
LISTEN_VOLUME_NAME = os.environ.get("JMOSHI_MODAL_LISTEN_VOLUME", names.LISTEN_VOLUME_NAME)
TEST_NAME = os.environ.get("JMOSHI_MODAL_LISTEN_TEST", "")  # the test (a folder under tests/ on the Volume)
MOUNT = "/listening"
TESTS_DIR = "tests"  # on the Volume: tests/<name>/{test.json, clips/, controls/, ratings/}
HOST = "0.0.0.0"
PORT = 8999
MAX_INPUTS = 500  # HTTP requests in flight at once in the one container (raters fetch clips, answer)
IDLE_S = 900  # a quiet test keeps its container 15 minutes, then the next rater starts a new one (seconds)
TIMEOUT_S = 600  # one request (a clip download on a slow phone link) at most

LISTEN_REQUIREMENTS = (  # what the page imports (no torch, no moshi): the versions the kit's tests ran with
    "numpy==2.2.6",
    "scipy==1.17.1",
    "soundfile==0.14.0",
    "aiohttp==3.11.18",
    "pydantic==2.14.4",
    "pyyaml==6.0.4",
    "pandas==3.1.1",
    "matplotlib==3.11.2",
)
SETTINGS_ENV = {
    "JMOSHI_MODAL_LISTEN_APP": LISTEN_APP_NAME,
    "JMOSHI_MODAL_LISTEN_VOLUME": LISTEN_VOLUME_NAME,
    "JMOSHI_MODAL_LISTEN_TEST": TEST_NAME,
}

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .uv_pip_install(*LISTEN_REQUIREMENTS)
    .env(SETTINGS_ENV)
    .add_local_python_source("jmoshi_nb", ignore=["**/__pycache__/**", "**/*.pyc"])
)
app = modal.App(LISTEN_APP_NAME, image=image)
listening_volume = modal.Volume.from_name(LISTEN_VOLUME_NAME, create_if_missing=True)


def test_folder(name: str, root: str | Path = MOUNT) -> Path:
    """Where the test ``name`` lives in the container (the Volume's mount)."""
    if not name:
        raise RuntimeError("no test to serve: deploy it with `jmoshi-nb modal listen TEST` (JMOSHI_MODAL_LISTEN_TEST)")
    return Path(root) / TESTS_DIR / name


def start_rater_page(folder: str | Path, commit: Callable[[], None], host: str = HOST, port: int = PORT) -> RaterServer:
    """Open the saved test in ``folder`` and serve its rater page; ``commit()`` runs after each saved answer.

    Parameters
    ----------
    folder: the test's folder (on the Volume in a container).
    commit: makes the answer durable beyond the container (``Volume.commit``).
    host, port: where to listen (Modal's proxy reaches ``0.0.0.0:8999``).

    Returns
    -------
    The started ``RaterServer`` (its token is the test's page token).
    """
    test = ListeningTest.open(folder)
    return RaterServer(test, token=page_token(test.secret), on_saved=lambda _path: commit()).start(host, port)


@app.cls(
    volumes={MOUNT: listening_volume},
    cpu=1.0,
    memory=1024,
    max_containers=1,
    scaledown_window=IDLE_S,
    timeout=TIMEOUT_S,
)
@modal.concurrent(max_inputs=MAX_INPUTS)
class RaterPage:
    """The rater page of the deployed test, one container for every rater (see the module's note)."""

    @modal.web_server(port=PORT, startup_timeout=60)
    def serve(self) -> None:
        self.server: RaterServer | None = start_rater_page(test_folder(TEST_NAME), listening_volume.commit)

    @modal.exit()
    def shutdown(self) -> None:
        if getattr(self, "server", None) is not None:
            self.server.stop()  # type: ignore[union-attr]
        listening_volume.commit()


__all__ = ["RaterPage", "app", "start_rater_page", "test_folder"]
