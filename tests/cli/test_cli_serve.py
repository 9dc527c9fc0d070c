"""``earmark serve``: starts on 127.0.0.1 over a store, stops on Ctrl+C, refuses bad stores."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.fixture
def small_store(fsdd_dir, tmp_path):
    from earmark.backends import get_backend
    from earmark.pipeline import embed_manifest
    from earmark.store import LanceStore

    paths = sorted((fsdd_dir / "recordings").glob("[01]_george_[0-2].wav"))
    store = LanceStore(tmp_path / "store")
    embed_manifest(paths, get_backend("mfcc"), store, progress=False, with_frames=False)
    return tmp_path / "store", store, paths


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_on_loopback_and_stops_on_interrupt(small_store):
    directory, _, paths = small_store
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "earmark", "serve", str(directory), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 90
        info = None
        while info is None:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the server did not answer within 90 s"
            try:
                address = f"http://127.0.0.1:{port}/api/info"
                with urllib.request.urlopen(address, timeout=5) as answer:
                    info = json.load(answer)
            except OSError:
                time.sleep(0.2)
        assert info["n_clips"] == len(paths) and info["backend"] == "mfcc"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert b"<title>earmark" in answer.read()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/" in err
    assert f"{len(paths)} clips" in err


def test_serve_needs_a_store_folder(cli, tmp_path):
    run = cli("serve", tmp_path / "missing")
    assert run.code == 2
    assert "no such store folder" in run.stderr
    assert not (tmp_path / "missing").exists()


def test_a_store_of_several_backends_needs_a_choice(cli, small_store):
    from earmark.backends import get_backend
    from earmark.pipeline import embed_manifest

    directory, store, paths = small_store
    embed_manifest(paths[:2], get_backend("mfcc", n_mfcc=13), store, progress=False)
    run = cli("serve", directory)
    assert run.code == 2
    assert "2 backend configurations" in run.stderr and "--backend" in run.stderr


def test_a_damaged_model_file_is_refused_before_serving(cli, small_store, tmp_path):
    directory, _, _ = small_store
    bad = tmp_path / "bad.earmark"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    run = cli("serve", directory, "--model", bad)
    assert run.code in (1, 2)
    assert "bad.earmark" in run.stderr and "Traceback" not in run.stderr
