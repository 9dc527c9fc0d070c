"""One test suite for every EmbeddingStore implementation (perch-hoplite's idea).

Each test runs against MemoryStore and LanceStore; tests about persistence on disk and
about several processes writing at once run against LanceStore only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone

import numpy as np
import pytest

from earmark.exceptions import AudioError, ParameterError, StoreError
from earmark.store import (
    EmbeddingStore,
    MemoryStore,
    StoredEmbedding,
    default_cache_dir,
    embedding_key,
    open_store,
)
from earmark.store.lance import LanceStore


def make_record(
    index: int,
    *,
    dimension: int = 8,
    n_frames: int = 3,
    backend_key: str = "backend0000aaaa",
    frames: bool = True,
    start_s: float | None = None,
    end_s: float | None = None,
) -> StoredEmbedding:
    """A record whose every field depends on ``index``, so mix-ups show."""
    rng = np.random.default_rng(index)
    X = rng.standard_normal((n_frames, dimension)).astype(np.float32)
    starts = np.arange(n_frames) * 0.37 + index * 1e-3
    return StoredEmbedding(
        key=f"key-{backend_key}-{index:06d}",
        backend_key=backend_key,
        content_sha256=hashlib.sha256(str(index).encode()).hexdigest(),
        path=f"/data/clip {index}'s.wav",
        start_s=start_s,
        end_s=end_s,
        duration_s=1.0 + index / 7,
        backend="placeholder",
        backend_version="placeholder-1+none",
        weights_sha256="ab" * 32,
        params={"window_s": 0.5, "hop_s": None, "index": index, "nested": {"a": [1, 2]}},
        clip=X.mean(axis=0),
        X=X if frames else None,
        frame_start_s=starts if frames else None,
        frame_end_s=starts + 0.5 if frames else None,
        n_frames=n_frames,
        created_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
    )


@pytest.fixture(params=["memory", "lance"])
def store(request, tmp_path) -> EmbeddingStore:
    if request.param == "memory":
        return MemoryStore()
    return LanceStore(tmp_path / "cache")


def assert_same(got: StoredEmbedding, want: StoredEmbedding, *, frames: bool = True) -> None:
    for name in (
        "key", "backend_key", "content_sha256", "path", "start_s", "end_s", "duration_s",
        "backend", "backend_version", "weights_sha256", "params", "n_frames", "created_at",
    ):  # fmt: skip
        assert getattr(got, name) == getattr(want, name), name
    assert got.clip.dtype == np.float32 and np.array_equal(got.clip, want.clip)
    if frames and want.X is not None:
        assert got.X.dtype == np.float32 and np.array_equal(got.X, want.X)
        assert np.array_equal(got.frame_start_s, want.frame_start_s)
        assert np.array_equal(got.frame_end_s, want.frame_end_s)
    else:
        assert got.X is None and got.frame_start_s is None and got.frame_end_s is None


# --------------------------------------------------------------------------- round trip
def test_round_trip_is_exact(store):
    records = [
        make_record(0),
        make_record(1, start_s=0.25, end_s=1.75),
        make_record(2, frames=False),
        make_record(3, n_frames=1, start_s=2.0),
    ]
    assert store.put_many(records) == 4
    found = store.get_many([r.key for r in records] + ["not-there"])
    assert set(found) == {r.key for r in records}
    for record in records:
        assert_same(found[record.key], record)


def test_read_without_frames_skips_them(store):
    record = make_record(0)
    store.put_many([record])
    got = store.get_many([record.key], with_frames=False)[record.key]
    assert_same(got, record, frames=False)
    assert got.n_frames == 3


def test_returned_arrays_do_not_alias_the_store(store):
    record = make_record(0)
    store.put_many([record])
    record.clip[:] = 0  # the caller's copy changes after the put...
    first = store.get_many([record.key])[record.key]
    first.X[:] = 0  # ...and a reader edits what it got
    again = store.get_many([record.key])[record.key]
    assert np.array_equal(again.X, make_record(0).X)
    assert np.array_equal(again.clip, make_record(0).clip)


def test_many_keys_at_once(store):
    # More keys than one `IN (...)` query takes: exercises the scan-and-take path.
    records = [make_record(i, dimension=4, n_frames=2, frames=i % 10 > 0) for i in range(300)]
    assert store.put_many(records) == 300
    wanted = [r.key for r in records[::-1]] + [f"missing-{i}" for i in range(50)]
    found = store.get_many(wanted)
    assert len(found) == 300
    assert_same(found[records[123].key], records[123])
    assert store.existing(wanted) == {r.key for r in records}
    assert store.existing(wanted, with_frames=True) == {r.key for r in records if r.X is not None}
    X = store.clip_matrix([r.key for r in records[::-1]])
    assert np.array_equal(X, np.stack([r.clip for r in records[::-1]]))


# ----------------------------------------------------------------------- idempotence
def test_duplicate_puts_write_one_row(store):
    first, clash = make_record(0), make_record(99)
    clash.key = first.key  # same key, different content: the first one written wins
    assert store.put_many([first, clash, first]) == 1
    assert store.put_many([clash]) == 0
    assert store.put_many([first, make_record(1)]) == 1
    assert store.count() == 2
    assert_same(store.get_many([first.key])[first.key], first)


def test_replace_overwrites_in_place(store):
    frameless = make_record(0, frames=False)
    store.put_many([frameless])
    assert store.existing([frameless.key], with_frames=True) == set()
    full = make_record(0)
    assert store.put_many([full], replace=True) == 1
    assert store.count() == 1
    assert store.existing([full.key], with_frames=True) == {full.key}
    assert_same(store.get_many([full.key])[full.key], full)


def test_concurrent_threads_write_each_key_once(store):
    records = [make_record(i, dimension=4) for i in range(60)]

    def writer(offset: int) -> None:
        for start in range(offset, 60, 10):
            store.put_many(records[start : start + 15])

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 5, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 60
    keys = [record.key for record in store.iter_records(with_frames=False)]
    assert sorted(keys) == sorted(r.key for r in records)


# ---------------------------------------------------------------- tables and reading
def test_backends_live_in_separate_tables(store):
    small = [make_record(i, dimension=4, backend_key="smallsmall000001") for i in range(3)]
    large = [make_record(i, dimension=32, backend_key="largelarge000002") for i in range(5)]
    assert store.put_many(small + large) == 8
    assert sorted(store.backend_keys()) == ["largelarge000002", "smallsmall000001"]
    assert store.count() == 8
    assert store.count("smallsmall000001") == 3
    assert store.count("no-such-backend") == 0
    assert store.existing([small[0].key], backend_key="largelarge000002") == set()
    assert store.clip_matrix([r.key for r in large], backend_key="largelarge000002").shape == (
        5,
        32,
    )
    with pytest.raises(StoreError, match="dimensions"):
        store.clip_matrix([small[0].key, large[0].key])


def test_dimension_mismatch_in_one_table_is_refused(store):
    store.put_many([make_record(0, dimension=8)])
    with pytest.raises(StoreError, match="dimension"):
        store.put_many([make_record(1, dimension=9)])
    assert store.count() == 1


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda r: r.clip.__setitem__(0, np.nan), "NaN or inf"),
        (lambda r: r.X.__setitem__((0, 0), np.inf), "NaN or inf"),
        (lambda r: setattr(r, "X", r.X[:, :3]), "expected X of shape"),
        (lambda r: setattr(r, "frame_end_s", r.frame_end_s[:1]), "frame_end_s"),
        (lambda r: setattr(r, "key", ""), "non-empty string key"),
    ],
)
def test_malformed_records_are_refused_by_name(store, spoil, message):
    record = make_record(0)
    spoil(record)
    with pytest.raises(StoreError, match=message) as caught:
        store.put_many([make_record(1), record])
    assert record.path in str(caught.value)
    assert store.count() == 0  # nothing from the refused batch was written


def test_clip_matrix_keeps_order_and_names_missing_keys(store):
    records = [make_record(i) for i in range(5)]
    store.put_many(records)
    order = [records[i].key for i in (3, 0, 4, 0)]
    X = store.clip_matrix(order)
    assert X.dtype == np.float32
    assert np.array_equal(X, np.stack([records[i].clip for i in (3, 0, 4, 0)]))
    with pytest.raises(StoreError, match="1 of 2 keys are not in the store.*nope"):
        store.clip_matrix([records[0].key, "nope"])


def test_iter_records_yields_every_record_once(store):
    records = [make_record(i, n_frames=1 + i % 3) for i in range(25)]
    store.put_many(records)
    seen = {r.key: r for r in store.iter_records(batch_size=7)}
    assert len(seen) == 25
    for record in records:
        assert_same(seen[record.key], record)


# --------------------------------------------------------------------- file hashes
def test_content_hash_is_sha256_of_the_bytes(store, tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc" * 1000)
    assert store.content_hash(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    with pytest.raises(AudioError, match="not found") as caught:
        store.content_hash(tmp_path / "missing.wav")
    assert "missing.wav" in str(caught.value)


def test_content_hash_memo_skips_unchanged_files_and_sees_changes(store, tmp_path, monkeypatch):
    import earmark.store.base as base

    reads = []
    real = base.hash_file_content
    monkeypatch.setattr(base, "hash_file_content", lambda p: reads.append(p) or real(p))
    path = tmp_path / "a.wav"
    path.write_bytes(b"one")
    first = store.content_hash(path)
    assert store.content_hash(str(path)) == first and len(reads) == 1

    # Same size, new bytes, and the old modification time put back: still seen.
    stat = os.stat(path)
    path.write_bytes(b"two")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == stat.st_mtime_ns
    second = store.content_hash(path)
    assert second == hashlib.sha256(b"two").hexdigest() != first and len(reads) == 2
    assert store.content_hash(path) == second and len(reads) == 2

    path.write_bytes(b"three, longer")
    assert store.content_hash(path) == hashlib.sha256(b"three, longer").hexdigest()
    assert len(reads) == 3


# -------------------------------------------------------------------------- keys
def test_embedding_key_depends_on_content_backend_and_span():
    content = "0" * 64
    base_key = embedding_key(content, "backend-a", None, None)
    assert len(base_key) == 32 and base_key == embedding_key(content, "backend-a")
    others = {
        embedding_key("1" * 64, "backend-a"),
        embedding_key(content, "backend-b"),
        embedding_key(content, "backend-a", 0.0, None),
        embedding_key(content, "backend-a", None, 1.0),
        embedding_key(content, "backend-a", 0.5, 1.0),
    }
    assert base_key not in others and len(others) == 5
    # Spans that differ only by float rounding are the same span.
    assert embedding_key(content, "b", 0.1 + 0.2, 1.0) == embedding_key(content, "b", 0.3, 1.0)
    with pytest.raises(ParameterError, match="start_s"):
        embedding_key(content, "b", -1.0, None)


def test_embedding_key_takes_a_backend():
    from earmark.backends import get_backend

    backend = get_backend("placeholder")
    assert embedding_key("0" * 64, backend) == embedding_key("0" * 64, backend.cache_key())
    other = get_backend("placeholder", window_s=0.25)
    assert embedding_key("0" * 64, backend) != embedding_key("0" * 64, other)


# ----------------------------------------------------------------- opening the store
def test_open_store_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EARMARK_CACHE_DIR", str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    store = open_store()
    assert isinstance(store, LanceStore) and store.directory == tmp_path / "from-env"
    assert isinstance(open_store(":memory:"), MemoryStore)
    assert open_store(tmp_path / "given").directory == tmp_path / "given"
    monkeypatch.delenv("EARMARK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_cache_dir() == tmp_path / "xdg" / "earmark"


def test_lance_store_refuses_a_file_as_its_folder(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not-a-folder"):
        LanceStore(blocker)


# ------------------------------------------------------------------ Lance on disk
def test_lance_persists_across_reopening(tmp_path, monkeypatch):
    import earmark.store.base as base

    directory = tmp_path / "cache"
    audio_file = tmp_path / "a.wav"
    audio_file.write_bytes(b"RIFF....")
    records = [make_record(i) for i in range(4)] + [make_record(9, frames=False)]
    with LanceStore(directory) as store:
        store.put_many(records)
        digest = store.content_hash(audio_file)

    reopened = LanceStore(directory)
    assert reopened.count() == 5
    found = reopened.get_many([r.key for r in records])
    for record in records:
        assert_same(found[record.key], record)
    # The hash memo persisted too: an unchanged file is not read again.
    monkeypatch.setattr(base, "hash_file_content", lambda p: pytest.fail("file re-read"))
    assert reopened.content_hash(audio_file) == digest
    assert reopened.put_many(records) == 0 and reopened.count() == 5
    reopened.compact()
    assert reopened.count() == 5
    assert_same(reopened.get_many([records[2].key])[records[2].key], records[2])


def test_lance_table_declares_key_as_primary_key(tmp_path):
    store = LanceStore(tmp_path)
    store.put_many([make_record(0)])
    table = store._embedding_table("backend0000aaaa")
    metadata = table.schema.field("key").metadata or {}
    assert any(b"primary-key" in name for name in metadata)
    assert table.schema.field("vector").type.list_size == 8


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from store.test_store_compliance import make_record
    from earmark.store.lance import LanceStore
    store = LanceStore({directory!r})
    offset = int(sys.argv[1])
    records = [make_record(i, dimension=4, n_frames=1) for i in range(60)]
    store.count()
    print("ready", flush=True)
    sys.stdin.readline()  # start together, so the writes really overlap
    written = 0
    for start in range(offset, 60, 2):
        written += store.put_many(records[start : start + 4])
    print(written)
    """
)


def test_lance_processes_writing_at_once_leave_no_duplicate(tmp_path):
    # Dask workers (or a retried task) write overlapping batches from several
    # processes; the primary-key declaration is what keeps them from duplicating.
    directory = tmp_path / "cache"
    LanceStore(directory).put_many([make_record(0, dimension=4)])
    tests = os.path.dirname(os.path.dirname(__file__))
    script = _WRITER.format(tests=tests, directory=str(directory))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(offset)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 1)
    ]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    written = [int(worker.communicate(timeout=240)[0].strip()) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    store = LanceStore(directory)
    keys = [record.key for record in store.iter_records(with_frames=False)]
    assert len(keys) == len(set(keys)) == 60
    assert sum(written) == 59  # each key written by exactly one process, key 0 by none


# --------------------------------------------------------------------- vector search
SEARCH_BACKEND = "backend0000aaaa"


def _search_records(n: int = 60) -> list[StoredEmbedding]:
    # Some records without frames and some spans, so both levels see every case.
    return [
        make_record(
            i, dimension=16, n_frames=1 + i % 4, frames=i % 9 > 0,
            start_s=2.0 if i % 5 == 0 else None, end_s=9.0 if i % 5 == 0 else None,
        )
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("level", ["clip", "segment"])
@pytest.mark.parametrize("exact", [True, False])
def test_search_agrees_with_exact_numpy_search(store, level, exact):
    records = _search_records()
    store.put_many(records)
    reference = MemoryStore()
    reference.put_many(records)
    queries = np.random.default_rng(1).standard_normal((5, 16))
    for query in queries:
        got = store.search_vectors(query, backend_key=SEARCH_BACKEND, k=7, level=level, exact=exact)
        want = reference.search_vectors(query, backend_key=SEARCH_BACKEND, k=7, level=level)
        assert [(h.key, h.frame) for h in got] == [(h.key, h.frame) for h in want]
        assert np.allclose([h.distance for h in got], [h.distance for h in want], atol=1e-5)
        assert [h.distance for h in got] == sorted(h.distance for h in got)
        assert [(h.path, h.start_s, h.end_s) for h in got] == [
            (h.path, h.start_s, h.end_s) for h in want
        ]


def test_search_finds_each_stored_vector_first(store):
    records = _search_records(20)
    store.put_many(records)
    for record in records[1:6]:
        clip = store.search_vectors(record.clip * 3.0, backend_key=SEARCH_BACKEND, k=3)
        assert clip[0].key == record.key and abs(clip[0].distance) < 1e-5
        assert clip[0].frame is None and (clip[0].start_s, clip[0].end_s) == (
            record.start_s, record.end_s,
        )  # fmt: skip
        frame = record.n_frames - 1
        segment = store.search_vectors(
            record.X[frame], backend_key=SEARCH_BACKEND, k=3, level="segment"
        )
        assert (segment[0].key, segment[0].frame) == (record.key, frame)
        # Segment spans are absolute in the file: the record's start plus the frame's.
        offset = record.start_s or 0.0
        assert segment[0].start_s == pytest.approx(offset + record.frame_start_s[frame])
        assert segment[0].end_s == pytest.approx(offset + record.frame_end_s[frame])


def test_search_refuses_bad_queries_and_unknown_backends(store):
    store.put_many(_search_records(5))
    unknown = "no embeddings of backend configuration nosuch.*stored: backend0000aaaa"
    with pytest.raises(StoreError, match=unknown):
        store.search_vectors(np.ones(16), backend_key="nosuch")
    with pytest.raises(ParameterError, match="dimension 16.*got 8"):
        store.search_vectors(np.ones(8), backend_key=SEARCH_BACKEND)
    for query, k, level, message in [
        (np.zeros(16), 1, "clip", "all zeros"),
        (np.full(16, np.nan), 1, "clip", "NaN"),
        (np.ones((2, 16)), 1, "clip", "shape"),
        (np.ones(16), 0, "clip", "k >= 1"),
        (np.ones(16), 1, "frames", "level"),
    ]:
        with pytest.raises(ParameterError, match=message):
            store.search_vectors(query, backend_key=SEARCH_BACKEND, k=k, level=level)


def test_segment_search_needs_frames(store):
    store.put_many([make_record(i, dimension=16, frames=False) for i in range(3)])
    assert len(store.search_vectors(np.ones(16), backend_key=SEARCH_BACKEND, k=5)) == 3
    with pytest.raises(StoreError, match="no record was stored with frame embeddings"):
        store.search_vectors(np.ones(16), backend_key=SEARCH_BACKEND, level="segment")


def _indexed_store(directory, index_type: str = "IVF_FLAT") -> LanceStore:
    from earmark.store.lance_index import IndexSettings

    # Index even a small table, and probe every partition: the index must then agree
    # with exact search (PQ codes only pick candidates; refine re-ranks them exactly).
    settings = IndexSettings(
        index_type=index_type, min_rows=100, num_partitions=2, num_sub_vectors=4, nprobes=2,
        refine_factor=100,
    )  # fmt: skip
    return LanceStore(directory, index_settings=settings)


@pytest.mark.parametrize("index_type", ["IVF_FLAT", "IVF_PQ"])
@pytest.mark.parametrize("level", ["clip", "segment"])
def test_lance_index_search_matches_exact_search(tmp_path, level, index_type):
    store = _indexed_store(tmp_path / "cache", index_type)
    records = _search_records(300)
    store.put_many(records)
    assert store.build_index(SEARCH_BACKEND, level=level) is True
    assert store.build_index(SEARCH_BACKEND, level=level) is False  # kept, not retrained
    table = store._vectors.table(SEARCH_BACKEND, level)
    assert [index.index_type for index in table.list_indices()] == [
        {"IVF_FLAT": "IvfFlat", "IVF_PQ": "IvfPq"}[index_type]
    ]
    reference = MemoryStore()
    reference.put_many(records)
    for query in np.random.default_rng(2).standard_normal((8, 16)):
        got = store.search_vectors(query, backend_key=SEARCH_BACKEND, k=5, level=level)
        want = reference.search_vectors(query, backend_key=SEARCH_BACKEND, k=5, level=level)
        assert [(h.key, h.frame) for h in got] == [(h.key, h.frame) for h in want]


def test_lance_segments_follow_new_records_and_persist(tmp_path):
    directory = tmp_path / "cache"
    store = _indexed_store(directory)
    store.put_many(_search_records(300))
    store.build_index(SEARCH_BACKEND, level="segment")
    segments = store._vectors.table(SEARCH_BACKEND, "segment")
    n_segments = segments.count_rows()
    assert (directory / f"segments_{SEARCH_BACKEND}.sync.json").is_file()

    # Written after the index was trained: found (flat scan of unindexed rows), once each.
    late = make_record(1000, dimension=16, n_frames=2)
    store.put_many([late])
    hits = store.search_vectors(late.X[1], backend_key=SEARCH_BACKEND, k=2, level="segment")
    assert (hits[0].key, hits[0].frame) == (late.key, 1) and hits[0].distance < 1e-5
    assert segments.count_rows() == n_segments + 2

    # Another process's view: same answer, nothing added twice.
    reopened = _indexed_store(directory)
    again = reopened.search_vectors(late.X[1], backend_key=SEARCH_BACKEND, k=2, level="segment")
    assert [(h.key, h.frame) for h in again] == [(h.key, h.frame) for h in hits]
    assert reopened._vectors.table(SEARCH_BACKEND, "segment").count_rows() == n_segments + 2
    assert reopened.backend_keys() == [SEARCH_BACKEND]  # the segment table is no backend


def test_configurations_name_each_backend_by_name_and_parameters(store):
    store.put_many([make_record(0), make_record(1), make_record(2, backend_key="backend1111bbbb")])
    configurations = store.configurations()
    assert set(configurations) == {"backend0000aaaa", "backend1111bbbb"}
    first = configurations["backend0000aaaa"]
    assert first["backend"] == "placeholder" and first["records"] == 2
    assert first["params"]["window_s"] == 0.5
    assert configurations["backend1111bbbb"]["records"] == 1
