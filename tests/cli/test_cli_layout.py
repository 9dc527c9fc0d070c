"""What DATA means on the command line: 'demo' is the bundled set, a stray CSV is named."""

from __future__ import annotations

import shutil


def _tree(root, digits_dir):
    recordings = sorted((digits_dir / "recordings").glob("*.wav"))
    for index, label in enumerate(("low", "high")):
        (root / label).mkdir(parents=True)
        for take in range(2):
            shutil.copy(recordings[2 * index + take], root / label / f"{label}{take}.wav")
    return root


def test_demo_is_the_bundled_set_even_beside_a_folder_called_demo(
    cli, digits_dir, tmp_path, monkeypatch
):
    _tree(tmp_path / "demo", digits_dir)
    (tmp_path / "demo" / "predictions.csv").write_text("path,label,score\nlow/low0.wav,x,1\n")
    monkeypatch.chdir(tmp_path)

    bundled = cli("embed", "demo", "-b", "placeholder", "--cache-dir", tmp_path / "c")
    assert bundled.code == 0, bundled.stderr
    assert "detected layout fsdd, 300 items" in bundled.stderr
    assert "pass ./demo" in bundled.stderr

    local = cli("embed", "./demo", "-b", "placeholder", "--cache-dir", tmp_path / "c")
    assert local.code == 0, local.stderr
    assert "detected layout folders, 4 items, 2 classes" in local.stderr
    assert "ignored predictions.csv: earmark's output" in local.stderr
