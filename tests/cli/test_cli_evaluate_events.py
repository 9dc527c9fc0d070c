"""``earmark evaluate-events``: every detection figure per class, and threshold curves."""

from __future__ import annotations


def test_evaluate_events_scores_detections_per_class(cli, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("path,label,onset_s,offset_s\n/x/a.wav,dog,1.0,2.0\n/x/a.wav,bird,5.0,6.0\n"
                     "/x/b.wav,dog,3.0,4.0\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.events.csv").write_text(
        "path,label,onset_s,offset_s,score\n/x/a.wav,dog,1.1,2.1,0.9\n/x/a.wav,dog,8.0,9.0,0.3\n")
    (out / "b.events.csv").write_text("path,label,onset_s,offset_s,score\n/x/b.wav,dog,3.05,4.0,0.8\n")

    run = cli("evaluate-events", truth, out, "--plots", tmp_path / "plots", "--json")

    assert run.code == 0, run.stderr
    result = run.json()
    assert result["per_class"]["dog"]["event_f"] == 0.8  # 2 of 3 detections, 2 of 2 true
    assert result["per_class"]["bird"]["onset_recall"] == 0.0
    assert result["overall"]["detected"] == 3 and result["overall"]["true"] == 3
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "bird.threshold.png", "dog.threshold.png"]


def test_truth_paths_relative_to_the_truth_file_match_the_paths_detect_wrote(cli, tmp_path):
    """`earmark soundscapes` writes truth.csv with names relative to its folder; detect
    writes the paths it was given. Compared as strings nothing matched (every figure 0)."""
    scapes = tmp_path / "scapes"
    scapes.mkdir()
    (scapes / "truth.csv").write_text("path,label,onset_s,offset_s\na.wav,dog,1.0,2.0\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.events.csv").write_text(
        f"path,label,onset_s,offset_s,score\n{scapes / 'a.wav'},dog,1.05,2.0,0.9\n")

    run = cli("evaluate-events", scapes / "truth.csv", out, "--json")

    assert run.code == 0, run.stderr
    assert run.json()["overall"]["event_f"] == 1.0


def test_detections_of_other_recordings_are_one_clear_error(cli, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("path,label,onset_s,offset_s\n/x/a.wav,dog,1.0,2.0\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.events.csv").write_text("path,label,onset_s,offset_s,score\n/y/c.wav,dog,1.0,2.0,0.9\n")

    run = cli("evaluate-events", truth, out)

    assert run.code != 0
    assert "no detected recording is in the reference table" in run.stderr
    assert "Traceback" not in run.stderr
