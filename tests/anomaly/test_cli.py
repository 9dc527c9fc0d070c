"""``earmark anomaly fit|score|evaluate`` end to end on real recordings, in this process."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import pytest


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    from earmark.cli import main

    monkeypatch.setenv("EARMARK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["earmark", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _normal_notes(folder):
    return sorted(p for p in folder.glob("*.mp3")
                  if p.stem.split("_")[3] in ("forte", "fortissimo", "mezzo-forte", "mezzo-piano")
                  and "normal" in p.stem.split("_")[4])


@pytest.fixture
def sections(philharmonia_dir, tmp_path):
    """normal/flute, normal/oboe (every other note) and a labelled test manifest."""
    rows = []
    for name in ("flute", "oboe"):
        notes = _normal_notes(philharmonia_dir / name)
        (tmp_path / "normal" / name).mkdir(parents=True)
        for note in notes[::2]:
            shutil.copy(note, tmp_path / "normal" / name / note.name)
        rows += [{"path": str(p), "section": name, "label": "normal"} for p in notes[1::2][:6]]
    rows += [{"path": str(p), "section": "flute", "label": "anomaly"}
             for p in sorted((philharmonia_dir / "trombone").glob("*.mp3"))[:4]]
    rows += [{"path": str(p), "section": "oboe", "label": "anomaly"}
             for p in sorted((philharmonia_dir / "cello").glob("*.mp3"))[:4]]
    with open(tmp_path / "test.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "section", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_fit_score_evaluate(cli, sections):
    model = sections / "m.earmark"
    code, out, err = cli("anomaly", "fit", sections / "normal", "-o", model, "-b", "mfcc", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {s["name"] for s in summary["sections"]} == {"flute", "oboe"}

    files = sorted((sections / "normal" / "flute").glob("*.mp3"))[:2]
    code, out, err = cli("anomaly", "score", model, *files, sections / "missing.wav", "--json")
    rows = json.loads(out)
    assert [r["path"] for r in rows] == [str(f) for f in files] + [str(sections / "missing.wav")]
    assert all(isinstance(r["score"], float) for r in rows[:2]) and rows[2]["score"] is None
    assert "missing.wav" in rows[2]["error"]

    code, out, err = cli("anomaly", "score", model, *files, "-o", sections / "scores.csv",
                         "--events", sections / "events")
    assert code == 0, err
    assert len(list((sections / "events").glob("*.anomalies.csv"))) == 2
    with open(sections / "scores.csv") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == [str(f) for f in files]

    code, out, err = cli("anomaly", "evaluate", model, sections / "test.csv",
                         "--roc", sections / "roc.png", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["sections"]) == {"flute", "oboe"}
    assert 0 <= result["auc"] <= 1 and 0 <= result["pauc"] <= 1
    assert set(result["high_pass_baseline"]["sections"]) == {"flute", "oboe"}
    assert "domains" not in result and "domains" not in result["sections"]["flute"]  # none given
    assert (sections / "roc.png").stat().st_size > 1000

    # `earmark explain` explains the anomaly score of a file.
    code, out, err = cli("explain", model, files[0], "--class", "anomalous", "--segments", "4",
                         "--bands", "4", "--no-check", "-o", sections / "explained", "--json")
    assert code == 0, err
    assert json.loads(out)["explanation"]["label"] == "anomalous"

    # `earmark detect` is for class events: an anomaly model gets one clean refusal.
    code, out, err = cli("detect", model, files[0], "-o", sections / "events2")
    assert code == 2 and "Traceback" not in err
    assert "m.earmark" in err and "earmark anomaly score" in err


def test_too_few_normal_recordings_is_one_clean_error(cli, sections):
    for extra in sorted((sections / "normal" / "oboe").glob("*.mp3"))[2:]:
        extra.unlink()
    code, out, err = cli("anomaly", "fit", sections / "normal", "-o", sections / "m.earmark", "-b", "mfcc")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "section 'oboe' has 2 usable normal" in last
    assert "Traceback" not in err


def _dynamics(path):
    return path.stem.split("_")[3]


@pytest.fixture
def shifted(philharmonia_dir, tmp_path):
    """DCASE-named flute recordings: loud notes the source domain, quiet ones the target
    (6 to train); a test manifest with a domain column, oboe notes as anomalies."""
    flute = sorted(p for p in (philharmonia_dir / "flute").glob("*.mp3"))
    loud = [p for p in flute if _dynamics(p) in ("forte", "fortissimo", "mezzo-forte")]
    quiet = [p for p in flute if _dynamics(p) in ("mezzo-piano", "piano", "pianissimo")]
    folder = tmp_path / "normal" / "flute"
    folder.mkdir(parents=True)
    for index, note in enumerate(loud[::2]):
        shutil.copy(note, folder / f"section_00_source_train_normal_{index:04d}.mp3")
    for index, note in enumerate(quiet[:6]):
        shutil.copy(note, folder / f"section_00_target_train_normal_{index:04d}.mp3")
    oboe = sorted((philharmonia_dir / "oboe").glob("*.mp3"))
    rows = [{"path": str(p), "section": "flute", "domain": "source", "label": "normal"} for p in loud[1::2]]
    rows += [{"path": str(p), "section": "flute", "domain": "target", "label": "normal"} for p in quiet[6:12]]
    rows += [{"path": str(p), "section": "flute", "domain": "source" if _dynamics(p) != "piano" else "target",
              "label": "anomaly"} for p in oboe[:8]]
    with open(tmp_path / "test.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "section", "domain", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_domains_from_dcase_names_and_auc_per_domain(cli, shifted):
    model = shifted / "m.earmark"
    code, out, err = cli("anomaly", "fit", shifted / "normal", "-o", model, "-b", "mfcc", "--json")
    assert code == 0, err
    domains = {d["name"]: d for d in json.loads(out)["sections"][0]["domains"]}
    assert domains["target"]["n_items"] == 6 and domains["source"]["n_items"] >= 6
    assert domains["source"]["clip_threshold"] != domains["target"]["clip_threshold"]

    code, out, err = cli("anomaly", "evaluate", model, shifted / "test.csv", "--json")
    assert code == 0, err
    result = json.loads(out)
    per_domain = result["sections"]["flute"]["domains"]
    assert set(per_domain) == {"source", "target"}
    assert per_domain["target"]["n_normal"] == 6
    assert per_domain["target"]["n_anomalous"] == per_domain["source"]["n_anomalous"] == 8
    assert set(result["domains"]) == {"source", "target"} and 0 < result["score_hmean"] <= 1

    code, out, err = cli("anomaly", "evaluate", model, shifted / "test.csv", "--domain-unknown")
    assert code == 0, err
    assert "  source: AUC" in err and "  target: AUC" in err and "DCASE 2022 score" in err  # the table goes to stderr

    quiet = sorted((shifted / "normal" / "flute").glob("*target*"))[:2]
    code, out, err = cli("anomaly", "score", model, *quiet, "--domain", "target", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["domain"] for r in rows] == ["target", "target"]
    assert rows[0]["threshold"] == pytest.approx(domains["target"]["clip_threshold"])


def test_too_few_target_recordings_is_one_clean_error(cli, shifted):
    for extra in sorted((shifted / "normal" / "flute").glob("*target*"))[3:]:
        extra.unlink()
    code, out, err = cli("anomaly", "fit", shifted / "normal", "-o", shifted / "m.earmark", "-b", "mfcc")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "section 'flute' domain 'target' has 3 usable normal" in last
    assert "Traceback" not in err
