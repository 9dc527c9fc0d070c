"""Helpers every command shares: CSV written whole and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import os

import pytest

from earmark.cli._common import csv_cell, write_csv_atomically


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tsneaky", "'\tsneaky"),
        ("dog", "dog"),
        (-0.25, "-0.25"),
        (3, "3"),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_text(value, expected):
    assert csv_cell(value) == expected


def test_a_csv_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out" / "predictions.csv"
    write_csv_atomically(target, ["path", "label"], [["=cmd|' /C calc'!A0.wav", "dog"]])
    rows = list(csv.reader(target.open(newline="")))
    assert rows == [["path", "label"], ["'=cmd|' /C calc'!A0.wav", "dog"]]

    def failing_rows():
        yield ["a.wav", "cat"]
        raise KeyboardInterrupt  # killed halfway

    with pytest.raises(KeyboardInterrupt):
        write_csv_atomically(target, ["path", "label"], failing_rows())
    assert list(csv.reader(target.open(newline="")))[1][1] == "dog"  # the old file, whole
    assert os.listdir(target.parent) == ["predictions.csv"]  # no temporary left
