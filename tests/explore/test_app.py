"""The labelling server over HTTP: what it serves, what it refuses, what it escapes.

Requests go through a real socket with :mod:`http.client`, which sends the request
target exactly as written (no client-side clean-up of ``..`` or ``%2F``), to the real
server (uvicorn) over a real store of FSDD clips embedded with the MFCC backend.
"""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from _labelling import HOSTILE_NAME, build_store, running_server

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(fsdd_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelling-http")
    store, paths = build_store(fsdd_dir, folder)
    with running_server(folder / "store") as url:
        yield url, store, paths, folder


def request(url, method, target, body=None, headers=None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def clips(url, text=""):
    status, _, body = request(url, "GET", f"/api/clips?limit=500&q={quote(text)}")
    assert status == 200
    return json.loads(body)["clips"]


def key_of(url, name):
    (clip,) = [clip for clip in clips(url, name) if clip["name"] == name]
    return clip["key"]


# ------------------------------------------------------------------------ audio
def test_a_stored_clip_is_served_by_key_with_its_own_bytes(served):
    url, _, paths, _ = served
    path = next(path for path in paths if path.name == "0_george_3.wav")
    key = key_of(url, path.name)
    status, headers, body = request(url, "GET", f"/audio/{key}")
    assert status == 200
    assert headers["content-type"] == "audio/x-wav"
    assert body == path.read_bytes()
    # Seeking in <audio> needs byte ranges.
    status, headers, body = request(url, "GET", f"/audio/{key}", headers={"Range": "bytes=10-19"})
    assert status == 206
    assert body == path.read_bytes()[10:20]
    # A path in the query changes nothing: the file comes from the store.
    status, _, body = request(url, "GET", f"/audio/{key}?path=/etc/passwd&file=../../etc/passwd")
    assert status == 200 and body == path.read_bytes()


def _escapes(url, paths, folder) -> list[str]:
    key = key_of(url, "0_george_3.wav")
    a_clip = str(paths[0])
    return [
        "/audio/../../etc/passwd",
        "/audio/..%2F..%2Fetc%2Fpasswd",
        "/audio/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/audio/%252e%252e%252fetc%252fpasswd",
        "/audio/..%5C..%5Cetc%5Cpasswd",
        "/audio/%2Fetc%2Fpasswd",
        "/audio//etc/passwd",
        "/audio/" + quote(a_clip, safe=""),
        "/audio/" + quote(a_clip),
        "/audio" + a_clip,
        f"/audio/{key}/../../../../etc/passwd",
        f"/audio/{key}%2F..%2F..%2Fetc%2Fpasswd",
        f"/audio/{key.upper()}",
        f"/audio/{key}%00",
        "/audio/" + "0" * 32,
        "/audio/" + quote(str(folder / "store"), safe=""),
        "/static/../../../../etc/passwd",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/..%2Fserver.py",
        "/static/server.py",
        "/static/__init__.py",
        "/static/%2Fetc%2Fpasswd",
        "/etc/passwd",
        "/..%2F..%2Fetc%2Fpasswd",
        "/" + quote(a_clip, safe=""),
    ]


def test_nothing_outside_the_collection_is_served(served):
    url, _, paths, folder = served
    secret = Path("/etc/passwd").read_bytes()[:20]
    clip_bytes = paths[0].read_bytes()
    for target in _escapes(url, paths, folder):
        status, _, body = request(url, "GET", target)
        assert status in (400, 403, 404), (target, status)
        assert secret not in body and clip_bytes[:64] not in body, target


def test_raw_dot_dot_outside_the_root_is_refused(served):
    url, *_ = served
    status, _, body = request(url, "GET", "/../../../etc/passwd")
    assert status in (400, 403, 404)
    assert b"root:" not in body


def test_a_clip_whose_file_is_gone_is_404_and_new_clips_appear(served, fsdd_dir):
    from earmark.backends import get_backend
    from earmark.pipeline import embed_manifest

    url, store, _, folder = served
    extra = folder / "audio" / "9_theo_1.wav"
    shutil.copyfile(fsdd_dir / "recordings" / extra.name, extra)
    embed_manifest([extra], get_backend("mfcc"), store, progress=False, with_frames=False)
    key = key_of(url, extra.name)  # the running server sees the new clip
    assert request(url, "GET", f"/audio/{key}")[0] == 200
    extra.unlink()
    status, _, body = request(url, "GET", f"/audio/{key}")
    assert status == 404
    assert str(extra).encode() not in body


# --------------------------------------------------------------------- escaping
def test_names_are_data_never_markup(served):
    url, *_ = served
    (clip,) = clips(url, "onerror")
    assert clip["name"] == HOSTILE_NAME
    status, headers, page = request(url, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    # The page is static: data reaches it only as JSON, put in with textContent.
    assert b"onerror" not in page and b"<img" not in page
    script = request(url, "GET", "/static/app.js")[2].decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["x-content-type-options"] == "nosniff"


def test_every_answer_is_json_or_a_known_file(served):
    url, *_ = served
    for target in ("/api/info", "/api/clips", "/api/labels?target=x", "/nothing"):
        _, headers, body = request(url, "GET", target)
        assert headers["content-type"] == "application/json", target
        json.loads(body)
    assert request(url, "GET", "/static/app.css")[1]["content-type"].startswith("text/css")


def test_other_hosts_are_refused(served):
    # DNS rebinding: a page on another site resolving its own name to 127.0.0.1.
    url, *_ = served
    status, _, body = request(url, "GET", "/api/info", headers={"Host": "attacker.example"})
    assert status == 400 and b"n_clips" not in body


# ----------------------------------------------------------------------- labels
def test_labels_take_the_path_from_the_store(served):
    url, _, paths, _ = served
    key = key_of(url, "1_lucas_0.wav")
    body = {"key": key, "target": "http one", "value": "positive", "path": "/etc/passwd"}
    status, _, answer = request(url, "POST", "/api/labels", body, JSON)
    assert status == 200
    saved = json.loads(answer)
    assert saved["path"] == str(next(p for p in paths if p.name == "1_lucas_0.wav"))
    status, _, answer = request(url, "GET", "/api/labels?target=" + quote("http one"))
    (label,) = json.loads(answer)["labels"]
    assert (label["key"], label["value"], label["name"]) == (key, "positive", "1_lucas_0.wav")
    # value null takes the label away
    body = {"key": key, "target": "http one", "value": None}
    assert request(url, "POST", "/api/labels", body, JSON)[0] == 200
    assert json.loads(request(url, "GET", "/api/labels?target=http%20one")[2])["labels"] == []


@pytest.mark.parametrize(
    "body, status",
    [
        ({"key": "0" * 32, "target": "t", "value": "positive"}, 404),
        ({"key": "../../etc/passwd", "target": "t", "value": "positive"}, 404),
        ({"key": None, "target": "t", "value": "positive"}, 404),
        ({"target": "t", "value": "maybe"}, 400),
        ({"target": "", "value": "positive"}, 400),
    ],
)
def test_bad_labels_are_refused(served, body, status):
    url, *_ = served
    body = {"key": key_of(url, "0_theo_1.wav"), **body}
    got, headers, answer = request(url, "POST", "/api/labels", body, JSON)
    assert got == status
    assert json.loads(answer)["error"]
    assert json.loads(request(url, "GET", "/api/labels?target=t")[2])["labels"] == []


def test_writes_need_a_content_type_no_other_site_can_send_unasked(served):
    # text/plain is what a cross-site <form> or fetch may send without a CORS preflight.
    url, *_ = served
    body = json.dumps({"key": key_of(url, "0_theo_1.wav"), "target": "csrf", "value": "positive"})
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        status, _, _ = request(url, "POST", "/api/labels", body, {"Content-Type": kind})
        assert status == 415, kind
    assert json.loads(request(url, "GET", "/api/labels?target=csrf")[2])["labels"] == []
    plain = {"Content-Type": "text/plain"}
    status, _, _ = request(url, "POST", "/api/search-upload", b"RIFF", plain)
    assert status == 415


# --------------------------------------------------------------- search, train
def test_search_by_key_and_by_upload_agree(served, fsdd_dir):
    url, *_ = served
    key = key_of(url, "1_jackson_2.wav")
    status, _, answer = request(url, "POST", "/api/search", {"key": key, "k": 5}, JSON)
    assert status == 200
    by_key = json.loads(answer)
    assert by_key["query"]["key"] == key
    assert [hit["key"] for hit in by_key["hits"]][0] == key
    distances = [hit["distance"] for hit in by_key["hits"]]
    assert len(distances) == 5 and distances == sorted(distances)
    data = (fsdd_dir / "recordings" / "1_jackson_2.wav").read_bytes()
    headers = {"Content-Type": "application/octet-stream"}
    status, _, answer = request(url, "POST", "/api/search-upload?k=5&name=a.wav", data, headers)
    assert status == 200
    assert [hit["key"] for hit in json.loads(answer)["hits"]] == [h["key"] for h in by_key["hits"]]
    status, _, answer = request(url, "POST", "/api/search-upload?name=a.wav", b"not audio", headers)
    assert status == 400 and "cannot be read" in json.loads(answer)["error"]


def test_train_needs_both_classes_then_ranks_unlabelled_clips(served):
    url, *_ = served
    target = "train over http"
    positive = key_of(url, "0_lucas_1.wav")
    body = {"key": positive, "target": target, "value": "positive"}
    request(url, "POST", "/api/labels", body, JSON)
    status, _, answer = request(url, "POST", "/api/train", {"target": target}, JSON)
    assert status == 400 and "0 negative" in json.loads(answer)["error"]
    negative = key_of(url, "1_lucas_1.wav")
    body = {"key": negative, "target": target, "value": "negative"}
    request(url, "POST", "/api/labels", body, JSON)
    status, _, answer = request(url, "POST", "/api/train", {"target": target, "n": 7}, JSON)
    assert status == 200
    trained = json.loads(answer)
    assert (trained["n_positive"], trained["n_negative"]) == (1, 1)
    keys = [clip["key"] for clip in trained["uncertain"]]
    assert len(keys) == 7 and not {positive, negative} & set(keys)
    margins = [clip["margin"] for clip in trained["uncertain"]]
    assert margins == sorted(margins)
    assert request(url, "POST", "/api/train", {"target": target, "n": 0}, JSON)[0] == 400


def test_the_session_works_in_the_backend_it_is_given(served):
    from earmark.backends import get_backend
    from earmark.exceptions import ParameterError
    from earmark.explore.app import LabellingSession

    _, store, paths, _ = served
    backend = get_backend("mfcc")
    session = LabellingSession(store, backend=backend)
    assert session.backend_key == backend.cache_key()
    assert len(session.collection()) >= len(paths)
    # Another configuration of the same backend embeds differently: no such table here.
    with pytest.raises(ParameterError, match="holds no embeddings of backend configuration"):
        LabellingSession(store, backend=get_backend("mfcc", n_mfcc=13))


# ------------------------------------------------------------- under load, bounded
def test_8_threads_x_25_first_labels_over_http_then_a_restart_one_row_each(fsdd_dir, tmp_path):
    """The duplicate-row reproduction: simultaneous first labels of the same clips."""
    import threading

    import lancedb

    from _labelling import running_server as serve_again

    store, _ = build_store(fsdd_dir, tmp_path)
    with serve_again(tmp_path / "store") as url:
        keys = [clip["key"] for clip in clips(url)][:25]
        assert len(keys) == 25
        start = threading.Barrier(8)
        statuses = []

        def writer(number: int) -> None:
            start.wait()
            for index, key in enumerate(keys):
                value = ("positive", "negative")[(number + index) % 2]
                body = {"key": key, "target": "together", "value": value}
                statuses.append(request(url, "POST", "/api/labels", body, JSON)[0])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 200
        served_labels = json.loads(request(url, "GET", "/api/labels?target=together")[2])
    rows = lancedb.connect(str(tmp_path / "store")).open_table("labels").to_arrow().to_pylist()
    assert len(rows) == 25 == len({(row["target"], row["key"]) for row in rows})
    with serve_again(tmp_path / "store") as url:  # the restart
        again = json.loads(request(url, "GET", "/api/labels?target=together")[2])["labels"]
        status, _, answer = request(url, "POST", "/api/train", {"target": "together"}, JSON)
    assert sorted((l["key"], l["value"]) for l in again) == sorted(
        (l["key"], l["value"]) for l in served_labels["labels"]
    )
    trained = json.loads(answer)
    assert status == 200 and trained["n_positive"] + trained["n_negative"] == 25


@pytest.mark.parametrize(
    "body, status",
    [
        ("[" * 100_000 + "]" * 100_000, 413),  # too large before it is too deep
        ('{"a":' * 5000 + "1" + "}" * 5000, 400),  # deep enough to break json.loads
        ('{"key": ' + "[" * 20 + "]" * 20 + "}", 400),
        ('{"key": "' + "x" * 70_000 + '"}', 413),
        ("{not json", 400),
    ],
)
def test_deep_or_huge_json_is_a_4xx_with_a_message(served, body, status):
    url, *_ = served
    for route in ("/api/labels", "/api/search", "/api/train", "/api/save-model"):
        got, _, answer = request(url, "POST", route, body, JSON)
        assert got == status, route
        assert json.loads(answer)["error"]


def test_labels_export_as_csv_and_raven_and_the_model_is_saved(served):
    import csv
    import io

    url, store, _, _ = served
    target = "export me"
    positive, negative = key_of(url, "0_george_3.wav"), key_of(url, "1_george_3.wav")
    for key, value in ((positive, "positive"), (negative, "negative")):
        request(url, "POST", "/api/labels", {"key": key, "target": target, "value": value}, JSON)
    status, headers, answer = request(url, "GET", "/api/labels/export?target=export%20me")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="export-me.labels.csv"' in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.decode())))
    assert {(row["key"], row["value"]) for row in rows} == {
        (positive, "positive"), (negative, "negative")
    }
    status, _, answer = request(url, "GET", "/api/labels/export?target=export%20me&format=raven")
    lines = answer.decode().splitlines()
    assert status == 200 and lines[0].startswith("Selection\t") and len(lines) == 3
    assert all(float(line.split("\t")[4]) > 0 for line in lines[1:])  # clip durations
    assert request(url, "GET", "/api/labels/export?target=x&format=xls")[0] == 400

    status, _, answer = request(url, "POST", "/api/save-model", {"target": target}, JSON)
    assert status == 200, answer
    saved = json.loads(answer)
    from earmark.model import EarmarkModel

    model = EarmarkModel.load(saved["path"])
    assert saved["path"].startswith(str(store.directory)) and (
        sorted(map(str, model.classes_)) == ["negative", "positive"]
    )
    status, _, answer = request(url, "POST", "/api/save-model", {"target": "nothing yet"}, JSON)
    assert status == 400 and "positive and one negative" in json.loads(answer)["error"]


def test_an_upload_whose_header_lies_is_refused_without_decoding(served, fsdd_dir):
    import resource
    import struct

    url, *_ = served
    data = bytearray((fsdd_dir / "recordings" / "1_jackson_2.wav").read_bytes())
    struct.pack_into("<I", data, data.find(b"fmt ") + 12, 1)  # 1 Hz: hours of audio
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    headers = {"Content-Type": "application/octet-stream"}
    status, _, answer = request(url, "POST", "/api/search-upload?name=a.wav", bytes(data), headers)
    assert status == 400 and "implausible sample rate" in json.loads(answer)["error"]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, f"the server's peak grew by {grown_mib:.0f} MiB"
