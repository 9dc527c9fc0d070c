"""Similarity search on real audio: FSDD recordings embedded with MFCC into a LanceStore.

The MFCC backend runs with quarter-second frames (sixteenth-second hop), so each
recording (0.3 to 0.8 s) has several segments, each with its own span.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from earmark.backends import get_backend
from earmark.embedding import embed_file
from earmark.exceptions import AudioError, ParameterError, StoreError
from earmark.explore.search import (
    SearchHit,
    backend_for_store,
    embed_query,
    search,
    search_audio,
    stored_backends,
)
from earmark.store import MemoryStore, StoredEmbedding, embedding_key
from earmark.store.lance import LanceStore
from earmark.store.lance_index import IndexSettings

SPEAKERS = ("george", "jackson", "nicolas")


@pytest.fixture(scope="module")
def backend():
    return get_backend("mfcc", window_s=0.25, hop_s=0.0625)


@pytest.fixture(scope="module")
def paths(fsdd_dir):
    return [
        fsdd_dir / "recordings" / f"{digit}_{speaker}_{take}.wav"
        for digit in range(10)
        for speaker in SPEAKERS
        for take in range(2)
    ]


@pytest.fixture(scope="module")
def records(paths, backend):
    store = MemoryStore()  # only for its content hash
    found = []
    for path in paths:
        digest = store.content_hash(path)
        found.append(
            StoredEmbedding.from_embeddings(
                embed_file(backend, path), key=embedding_key(digest, backend),
                backend=backend, content_sha256=digest, path=path,
            )  # fmt: skip
        )
    return found


def _lance(directory, records, **settings) -> LanceStore:
    store = LanceStore(directory, index_settings=IndexSettings(**settings) if settings else None)
    store.put_many(records)
    return store


@pytest.fixture
def store(tmp_path, records):
    return _lance(tmp_path / "cache", records)


def test_a_file_searched_with_itself_comes_first(store, paths, backend):
    for path in paths[::17]:
        hits = search_audio(store, path, backend, k=5)
        assert len(hits) == 5 and all(isinstance(hit, SearchHit) for hit in hits)
        assert hits[0].path == str(path)
        assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
        assert hits[1].path != str(path) and hits[1].distance > 1e-5  # another recording
        assert [hit.distance for hit in hits] == sorted(hit.distance for hit in hits)


def test_same_speaker_and_digit_are_near(store, paths, backend):
    # Not a benchmark: the other take of the same digit by the same speaker should
    # rank above most of the 58 other recordings (MFCC statistics track the voice).
    ranks = []
    for path in paths[::2]:
        twin = path.with_name(path.name.replace("_0.wav", "_1.wav"))
        hits = search_audio(store, path, backend, k=len(paths))
        ranks.append([hit.path for hit in hits].index(str(twin)))
    assert np.median(ranks) <= 6, ranks


@pytest.mark.parametrize(
    "index_type, level",
    # PQ needs 256 rows to train its codes: only the segments are that many.
    [("IVF_PQ", "segment"), ("IVF_FLAT", "segment"), ("IVF_FLAT", "clip")],
)
def test_index_search_matches_exact_search(tmp_path, records, backend, paths, index_type, level):
    # Force an index onto this small store, probing every partition: answers must equal
    # exact search.
    indexed = _lance(
        tmp_path / "indexed", records, index_type=index_type, min_rows=50, num_partitions=2,
        num_sub_vectors=8, nprobes=2, refine_factor=50,
    )  # fmt: skip
    exact = MemoryStore()
    exact.put_many(records)
    key = backend.cache_key()
    assert sum(record.n_frames for record in records) >= 256
    for level in (level,):
        assert indexed.build_index(key, level=level) is True
        for path in paths[::9]:
            query = embed_query(path, backend)
            got = search(indexed, query, backend_key=key, k=8, level=level)
            want = search(exact, query, backend_key=key, k=8, level=level, exact=True)
            assert [(h.key, h.frame) for h in got] == [(h.key, h.frame) for h in want]
            assert np.allclose([h.distance for h in got], [h.distance for h in want], atol=1e-4)


def test_segment_search_returns_spans_within_the_file(store, records, backend):
    record = max(records, key=lambda r: r.n_frames)
    assert record.n_frames >= 3
    frame = record.n_frames // 2
    hits = search(store, record.X[frame], backend_key=backend.cache_key(), k=10, level="segment")
    assert (hits[0].path, hits[0].frame) == (record.path, frame)
    assert hits[0].start_s == pytest.approx(frame * backend.hop_s)
    for hit in hits:
        duration = soundfile.info(hit.path).duration
        # Up to one sample over: spans are counted in samples at the backend's rate.
        assert 0 <= hit.start_s < hit.end_s <= duration + 1 / backend.sample_rate
        assert hit.end_s - hit.start_s <= 0.25 + 1e-6


def test_a_waveform_query_finds_what_its_file_finds(store, paths, backend):
    y, sr = soundfile.read(paths[4], dtype="float32")
    from_waveform = search_audio(store, y, backend, sr=sr, k=3, level="segment")
    from_file = search_audio(store, paths[4], backend, k=3, level="segment")
    assert [(h.key, h.frame) for h in from_waveform] == [(h.key, h.frame) for h in from_file]
    with pytest.raises(ParameterError, match="sr"):
        search_audio(store, y, backend)


def test_bad_queries_fail_by_name(store, tmp_path, backend):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav"):
        search_audio(store, text, backend)
    other = get_backend("mfcc")  # default frames: another configuration, another table
    with pytest.raises(StoreError, match="no embeddings of backend configuration"):
        search_audio(store, text, other)
    with pytest.raises(ParameterError, match="dimension 120"):
        search(store, np.ones(60), backend_key=backend.cache_key())


def test_the_store_says_which_backend_queries_need(store, backend, records):
    assert stored_backends(store) == {
        backend.cache_key(): {"backend": "mfcc", "params": backend.params, "records": len(records)}
    }
    assert backend_for_store(store).cache_key() == backend.cache_key()
    assert backend_for_store(store, "mfcc").cache_key() == backend.cache_key()
    with pytest.raises(StoreError, match="no embeddings of backend 'birdnet'.*mfcc"):
        backend_for_store(store, "birdnet")
    with pytest.raises(StoreError, match="parameters"):
        backend_for_store(store, "mfcc", {"window_s": 0.5})
    with pytest.raises(StoreError, match="holds no embeddings"):
        backend_for_store(MemoryStore())
