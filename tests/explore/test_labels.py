"""Labels on disk: set, replace, remove, and still there when the store is opened again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from earmark.exceptions import ParameterError
from earmark.explore.labels import LABEL_VALUES, Label, LabelStore

A, B = "a" * 32, "0123456789abcdef" * 2


def _label(key=A, value="positive", target="dog", **extra):
    return Label(target=target, key=key, value=value, path=f"/clips/{key[:4]}.wav", **extra)


def test_an_empty_folder_has_no_labels(tmp_path):
    labels = LabelStore(tmp_path)
    assert labels.labels() == [] and labels.targets() == []
    assert labels.get(A, target="dog") is None
    assert labels.count("dog") == dict.fromkeys(LABEL_VALUES, 0)


def test_labels_survive_reopening_and_a_second_value_replaces_the_first(tmp_path):
    first = LabelStore(tmp_path)
    saved = first.set(_label(value="positive"))
    assert saved.value == "positive" and saved.time is not None
    first.set(_label(B, "negative"))
    # A change of mind: still one row for (dog, A), with the new row's fields.
    first.set(_label(value="skip", start_s=1.5, end_s=3.0, backend_key="mfcc123"))

    again = LabelStore(tmp_path)
    found = [(label.key, label.value) for label in again.labels("dog")]
    assert found == [(B, "negative"), (A, "skip")]
    label = again.get(A, target="dog")
    assert (label.path, label.start_s, label.end_s, label.backend_key) == (
        "/clips/aaaa.wav", 1.5, 3.0, "mfcc123",
    )
    assert label.time >= saved.time
    assert again.count("dog") == {"positive": 0, "negative": 1, "skip": 1}


def test_targets_keep_their_labels_apart(tmp_path):
    labels = LabelStore(tmp_path)
    labels.put_many(
        [_label(target="dog"), _label(target="cat", value="negative"), _label(B, target="cat")]
    )
    assert labels.targets() == ["cat", "dog"]
    found = {(label.key, label.value) for label in labels.labels("cat")}
    assert found == {(A, "negative"), (B, "positive")}
    assert labels.get(A, target="dog").value == "positive"
    assert len(labels.labels()) == 3


def test_quotes_in_a_target_are_text_not_query(tmp_path):
    labels = LabelStore(tmp_path)
    sly = "x' OR '1'='1"
    labels.put_many([_label(target="dog"), _label(B, target=sly)])
    assert [label.key for label in labels.labels(sly)] == [B]
    assert labels.remove(A, target=sly) is False
    assert labels.get(A, target="dog") is not None


def test_backend_filter(tmp_path):
    labels = LabelStore(tmp_path)
    labels.put_many([_label(backend_key="one"), _label(B, backend_key="two")])
    assert [label.key for label in labels.labels("dog", backend_key="two")] == [B]


def test_remove(tmp_path):
    labels = LabelStore(tmp_path)
    labels.put_many([_label(), _label(B)])
    assert labels.remove(A, target="dog") is True
    assert labels.remove(A, target="dog") is False
    assert [label.key for label in LabelStore(tmp_path).labels("dog")] == [B]


def test_the_last_of_a_repeated_key_in_one_batch_wins(tmp_path):
    labels = LabelStore(tmp_path)
    assert labels.put_many([_label(value="positive"), _label(value="negative")]) == 1
    assert labels.get(A, target="dog").value == "negative"


@pytest.mark.parametrize(
    "label, message",
    [
        (_label(value="maybe"), "label value"),
        (_label(target=""), "target name"),
        (_label(target="   "), "target name"),
        (_label(target="a\nb"), "target name"),
        (_label(target="x" * 201), "target name"),
        (_label(key="../../etc/passwd"), "32-hex-digit"),
        (_label(key="A" * 32), "32-hex-digit"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(tmp_path, label, message):
    labels = LabelStore(tmp_path)
    with pytest.raises(ParameterError, match=message):
        labels.put_many([_label(B), label])
    assert labels.labels() == []


def test_target_names_are_stripped(tmp_path):
    labels = LabelStore(tmp_path)
    labels.set(_label(target="  dog bark "))
    assert labels.targets() == ["dog bark"]
    assert labels.get(A, target="dog bark") is not None


def test_labels_live_in_an_on_disk_store_folder(tmp_path):
    from earmark.store import LanceStore, MemoryStore

    store = LanceStore(tmp_path / "store")
    LabelStore.for_store(store).set(_label())
    assert LabelStore(tmp_path / "store").get(A, target="dog") is not None
    # The label table sits beside the embedding tables without being taken for one.
    assert store.backend_keys() == []
    with pytest.raises(ParameterError, match="on-disk store"):
        LabelStore.for_store(MemoryStore())


def _raw_rows(folder) -> list[dict]:
    """Every row of the labels table as LanceDB holds it, read by a fresh connection."""
    import lancedb

    return lancedb.connect(str(folder)).open_table("labels").to_arrow().to_pylist()


def test_8_threads_x_25_concurrent_writes_leave_one_row_per_key_and_the_last_wins(tmp_path):
    import random
    import threading

    keys = [f"{index:032x}" for index in range(25)]
    written: dict[str, list[tuple]] = {key: [] for key in keys}
    start = threading.Barrier(8)
    errors = []

    def writer(number: int) -> None:
        labels = LabelStore(tmp_path)  # one store object per thread, as separate requests
        order = keys[:]
        random.Random(number).shuffle(order)
        start.wait()
        try:
            for key in order:
                value = LABEL_VALUES[(number + int(key, 16)) % 3]
                saved = labels.set(_label(key, value, target="first labels"))
                written[key].append((saved.time, value, number))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    rows = _raw_rows(tmp_path)  # "restart": nothing of this process's objects is used
    assert len(rows) == 25 == len({(row["target"], row["key"]) for row in rows})
    again = LabelStore(tmp_path)
    for key in keys:
        assert len(written[key]) == 8
        # Times are stamped under the write lock: the newest time is the last write.
        last_time, last_value, _ = max(written[key])
        stored = again.get(key, target="first labels")
        assert (stored.value, stored.time) == (last_value, last_time)


def test_duplicate_rows_an_older_version_wrote_are_merged(tmp_path):
    import lancedb
    import pyarrow as pa

    labels = LabelStore(tmp_path)
    labels.set(_label(A, "positive"))
    (row,) = _raw_rows(tmp_path)
    later = dict(row, value="negative", time=row["time"] + timedelta(seconds=5))
    table = lancedb.connect(str(tmp_path)).open_table("labels")
    table.add(pa.Table.from_pylist([later, dict(row)], schema=table.schema))
    assert len(_raw_rows(tmp_path)) == 3

    fresh = LabelStore(tmp_path)
    assert [(label.key, label.value) for label in fresh.labels("dog")] == [(A, "negative")]
    fresh.set(_label(B, "skip"))  # the first write merges what was there
    rows = _raw_rows(tmp_path)
    assert sorted((row["key"], row["value"]) for row in rows) == sorted(
        [(A, "negative"), (B, "skip")]
    )
    assert len(rows) == 2


def test_labels_export_as_csv_and_raven_with_formulas_as_text(tmp_path):
    import csv
    import io

    from earmark.explore.labels import labels_to_csv, labels_to_raven

    labels = LabelStore(tmp_path)
    labels.set(Label("dog", A, "positive", "=HYPERLINK(1).wav", start_s=1.5, end_s=3.0))
    labels.set(Label("dog", B, "skip", "/clips/b.wav"))
    rows = list(csv.DictReader(io.StringIO(labels_to_csv(labels.labels("dog")))))
    assert [row["key"] for row in rows] == [A, B]
    assert rows[0]["path"] == "'=HYPERLINK(1).wav" and rows[0]["start_s"] == "1.5"
    assert rows[1]["start_s"] == "" and rows[1]["value"] == "skip"
    raven = labels_to_raven(labels.labels("dog")).splitlines()
    assert raven[0].startswith("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)")
    assert len(raven) == 2  # the skipped clip is not a selection
    fields = raven[1].split("\t")
    assert fields[3:5] == ["1.500000", "3.000000"] and fields[-2:] == ["dog", "positive"]
