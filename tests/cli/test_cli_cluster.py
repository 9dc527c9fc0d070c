"""``earmark cluster`` on real clips: the table, the JSON, the map, and errors before work."""

from __future__ import annotations

import re

import pytest

from _cli_data import CLIPS_PER_WORD, DIGITS, SPEAKERS, TAKES, WORDS


def test_json_reports_clusters_medoids_labels_and_scores(cli, words_dir):
    run = cli("cluster", words_dir, "-b", "mfcc", "--k", "3", "--json")
    assert run.code == 0, run.stderr
    result = run.json()
    n_items = len(WORDS) * CLIPS_PER_WORD
    assert result["backend"]["backend"] == "mfcc"
    assert result["n_items"] == n_items and result["n_clusters"] == 3
    assert result["criterion"].startswith("fixed by the user (silhouette ")
    clusters = result["clusters"]
    assert [row["cluster"] for row in clusters] == [0, 1, 2]
    assert sum(row["size"] for row in clusters) == n_items
    sizes = [row["size"] for row in clusters]
    assert sizes == sorted(sizes, reverse=True)
    files = {str(path) for path in words_dir.rglob("*.wav")}
    for row in clusters:
        assert row["medoid"] in files and row["examples"][0] == row["medoid"]
        members = {a["path"] for a in result["assignments"] if a["cluster"] == row["cluster"]}
        assert row["medoid"] in members
        assert sum(count for _, count in row["top_labels"]) <= row["size"]
        assert {label for label, _ in row["top_labels"]} <= set(WORDS)
    scores = result["scores"]
    assert scores["n_classes"] == 3 and 1 / 3 <= scores["purity"] <= 1
    assert -1 <= scores["adjusted_rand"] <= 1 and 0 <= scores["nmi"] <= 1
    assert result["map"] is None


def test_auto_k_table_on_speaker_groups(cli, digits_dir):
    """FSDD layout, agglomerative, k chosen by silhouette: the table a person reads."""
    run = cli("cluster", digits_dir, "-b", "mfcc", "--method", "agglomerative", "--max-k", "6")
    assert run.code == 0, run.stderr
    assert "medoid file" in run.stderr and "top labels" in run.stderr
    assert "silhouette" in run.stderr and "the highest of k=2..6" in run.stderr
    assert "against labels (4 classes): purity" in run.stderr
    # Medoids are shown relative to the collection's folder.
    assert re.search(r"│ \d_(george|jackson|lucas)_\d\.wav", run.stderr)
    run = cli("cluster", digits_dir, "-b", "mfcc", "--max-k", "6", "--json")
    result = run.json()
    assert sorted(map(int, result["selection_scores"])) == [2, 3, 4, 5, 6]
    n_items = len(DIGITS) * len(SPEAKERS) * len(TAKES)
    assert len(result["assignments"]) == n_items


def test_map_is_written_with_the_clusters(cli, words_dir, tmp_path):
    page = tmp_path / "out" / "map.html"
    run = cli(
        "cluster", words_dir, "-b", "mfcc", "--method", "hdbscan", "--min-cluster-size", "3",
        "--map", page, "--projection", "pca", "--audio-seconds", "0.5", "--json",
    )
    assert run.code == 0, run.stderr
    result = run.json()
    assert result["map"]["path"] == str(page) and result["map"]["projection"] == "pca"
    assert result["map"]["audio"] == "embed" and result["map"]["audio_failures"] == []
    assert "HDBSCAN" in result["criterion"]
    html = page.read_text()
    assert html.count("data:audio/mpeg;base64,") == len(WORDS) * CLIPS_PER_WORD
    assert "mfcc embeddings, hdbscan" in html and "layout PCA" in html


def test_bad_audio_is_named_and_the_rest_is_clustered(cli, words_dir, write_bad_files):
    good = next(words_dir.rglob("*.wav"))
    bad = write_bad_files(words_dir / "cat", good)
    run = cli("cluster", words_dir, "-b", "mfcc", "--k", "2")
    assert run.code == 0, run.stderr
    for path in bad.values():
        assert path.name in run.stderr
    assert f"2 clusters of {len(WORDS) * CLIPS_PER_WORD} clips" in run.stderr
    # Class folders reuse file names, so the medoid keeps its folder.
    assert re.search(r"│ (bed|cat|dog)/\w+_nohash_\d\.wav", run.stderr)


@pytest.mark.parametrize("args, message", [
    (["--method", "spectral"], "expected --method in kmeans, agglomerative, hdbscan"),
    (["--k", "many"], "expected --k to be a positive integer or 'auto'"),
    (["--k", "0"], "expected --k to be a positive integer or 'auto'"),
    (["--method", "hdbscan", "--k", "4"], "hdbscan chooses the number of clusters itself"),
    (["--min-k", "5", "--max-k", "3"], "expected 2 <= --min-k <= --max-k"),
    (["--criterion", "gap"], "expected --criterion in"),
    (["--map", "m.html", "--projection", "mds"], "expected --projection in"),
    (["--map", "m.html", "--audio", "stream"], "expected --audio in"),
])
def test_mistakes_end_in_one_line_before_any_embedding(cli, words_dir, cache_dir, args, message):
    run = cli("cluster", words_dir, "-b", "mfcc", *args)
    assert run.code == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not cache_dir.exists() or not any(cache_dir.iterdir())
