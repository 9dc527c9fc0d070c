"""``earmark serve --model``: each listed clip says what a model file predicts.

Over the real MFCC store of FSDD clips (0 and 1, four speakers): a clip model trained
on two speakers is loaded from its file with ``load_model`` and served; its answers for
the other speakers' clips are checked against ``predict_files`` on the same files, and
a file that vanished says so instead of failing the listing.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from _labelling import build_store, running_server, train_digit_model


@pytest.fixture(scope="module")
def served_with_model(fsdd_dir, tmp_path_factory):
    from earmark.models import load_model

    folder = tmp_path_factory.mktemp("labelling-model")
    store, paths = build_store(fsdd_dir, folder)
    model = load_model(train_digit_model(store, paths, folder))
    with running_server(folder / "store", model=model) as url:
        yield url, store, paths, model


def _get(url):
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


def test_clips_carry_the_models_predictions_as_predict_files_gives_them(served_with_model):
    from earmark.models import predict_files

    url, store, paths, model = served_with_model
    info = _get(f"{url}/api/info")
    assert info["model"] == {"kind": "clip", "classes": ["0", "1"]}
    listed = _get(f"{url}/api/clips?limit=500&q=theo")["clips"]
    assert len(listed) == 10
    expected = {p.path: p for p in predict_files(model, [c["path"] for c in listed], store=store)}
    for clip in listed:
        said, truth = clip["model"], expected[clip["path"]]
        assert said["error"] is None
        assert said["label"] == truth.label and said["score"] == pytest.approx(truth.score)
        assert [t["label"] for t in said["top_k"]] == [label for label, _ in truth.top_k]
    # The held-out speaker's digits are mostly right: the answers are the model's, not noise.
    right = sum(clip["model"]["label"] == clip["name"].split("_")[0] for clip in listed)
    assert right >= 8


def test_search_results_carry_predictions_too(served_with_model):
    url, _, _, _ = served_with_model
    (clip,) = _get(f"{url}/api/clips?limit=5&q=1_lucas_2")["clips"]
    status = urllib.request.Request(
        f"{url}/api/search", data=json.dumps({"key": clip["key"], "k": 5}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(status, timeout=120) as response:
        found = json.loads(response.read())
    assert found["query"]["model"]["label"] in ("0", "1")
    assert len(found["hits"]) == 5
    assert all(hit["model"]["label"] in ("0", "1") for hit in found["hits"])


def test_a_vanished_file_says_so_and_the_rest_are_scored(fsdd_dir, tmp_path):
    from earmark.explore.app import LabellingSession
    from earmark.models import load_model
    from earmark.store import LanceStore

    store, paths = build_store(fsdd_dir, tmp_path)
    model = load_model(train_digit_model(store, paths, tmp_path))
    gone = next(path for path in paths if path.name == "0_theo_4.wav")
    gone.unlink()
    session = LabellingSession(LanceStore(tmp_path / "store"), model=model)
    listed = session.clips("theo", limit=50)
    by_name = {clip["name"]: clip["model"] for clip in listed}
    assert len(by_name) == 10
    assert by_name["0_theo_4.wav"]["label"] is None
    assert "0_theo_4.wav" in by_name["0_theo_4.wav"]["error"]
    assert all(said["label"] in ("0", "1") for name, said in by_name.items()
               if name != "0_theo_4.wav")


def test_without_a_model_clips_have_no_model_field(fsdd_dir, tmp_path):
    from earmark.explore.app import LabellingSession
    from earmark.store import LanceStore

    store, _ = build_store(fsdd_dir, tmp_path)
    session = LabellingSession(LanceStore(tmp_path / "store"))
    assert session.info()["model"] is None
    assert all("model" not in clip for clip in session.clips("", limit=5))
