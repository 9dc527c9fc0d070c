"""A small real store for the labelling-loop tests, and the server run in a thread.

The store holds MFCC embeddings of 40 FSDD recordings (digits 0 and 1, 4 speakers,
5 takes) plus one copy of a recording under a hostile file name, so the page tests can
check that names are shown as text.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path

SPEAKERS = ("george", "jackson", "lucas", "theo")
DIGITS = ("0", "1")
TAKES = range(5)
#: A file name a careless page would run as HTML (no "/" is possible in a name).
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2<script> & co.wav"


def fsdd_paths(fsdd_dir: Path) -> list[Path]:
    recordings = Path(fsdd_dir) / "recordings"
    return [
        recordings / f"{digit}_{speaker}_{take}.wav"
        for digit in DIGITS
        for speaker in SPEAKERS
        for take in TAKES
    ]


def build_store(fsdd_dir: Path, folder: Path):
    """A LanceStore in ``folder / "store"`` over the clips, and the clips' paths.

    The clips are copied beside the store first, so tests may add or remove files.
    """
    from earmark.backends import get_backend
    from earmark.pipeline import embed_manifest
    from earmark.store import LanceStore

    audio = folder / "audio"
    audio.mkdir(parents=True)
    paths = []
    for source in fsdd_paths(fsdd_dir):
        paths.append(audio / source.name)
        shutil.copyfile(source, paths[-1])
    hostile = audio / HOSTILE_NAME
    # Another take's bytes, so it is a separate clip (same bytes would share one key).
    shutil.copyfile(Path(fsdd_dir) / "recordings" / "1_nicolas_0.wav", hostile)
    paths.append(hostile)
    store = LanceStore(folder / "store")
    run = embed_manifest(paths, get_backend("mfcc"), store, progress=False, with_frames=False)
    assert not run.failures, run.failures
    return store, paths


def train_digit_model(store, paths, folder: Path) -> Path:
    """A clip model (MFCC, logistic regression) telling 0 from 1, trained on two speakers'
    clips from the store and saved to ``folder / "digits.earmark"``."""
    import numpy as np

    from earmark.backends import get_backend
    from earmark.models import EarmarkModel
    from earmark.pipeline import clip_embeddings

    backend = get_backend("mfcc")
    train = [path for path in paths if path.name.split("_")[1] in SPEAKERS[:2]]
    X, ok, _ = clip_embeddings(train, backend, store, progress=False, with_frames=False)
    assert ok.all()
    y = np.array([path.name.split("_")[0] for path in train])
    model = EarmarkModel.train(X, y, backend=backend, learner="logreg")
    return model.save(folder / "digits.earmark")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(store_dir: Path, *, port: int | None = None, backend_name: str | None = None,
                   model=None):
    """Serve the labelling loop over a freshly opened store; yield its base URL.

    Each call opens the store anew, as a restarted ``earmark serve`` would, and stops
    the server on exit.
    """
    import uvicorn

    from earmark.backends import get_backend
    from earmark.explore.app import LabellingSession, create_app
    from earmark.store import LanceStore

    backend = get_backend(backend_name) if backend_name else None
    session = LabellingSession(LanceStore(store_dir), backend=backend, model=model)
    app = create_app(session, host="127.0.0.1")
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="earmark-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
