"""``earmark embed --workers N``: the same command on a local Dask cluster gives the same cache."""

from __future__ import annotations

import numpy as np

from _cli_data import WORDS


def test_embed_on_two_local_workers_fills_the_same_cache_as_one_process(
    cli_subprocess, words_dir, write_bad_files, tmp_path
):
    from earmark.store import open_store

    good = sorted((words_dir / WORDS[0]).glob("*.wav"))[0]
    bad = write_bad_files(words_dir / WORDS[1], good)
    local, cluster = tmp_path / "local", tmp_path / "cluster"

    one = cli_subprocess("embed", words_dir, "-b", "mfcc", "--cache-dir", local, "--json")
    two = cli_subprocess("embed", words_dir, "-b", "mfcc", "--cache-dir", cluster,
                         "--workers", "2", "--json", timeout=300)

    assert one.code == 0 and two.code == 0, two.stderr
    a, b = one.json(), two.json()
    assert b["workers"] == 2
    assert (b["items"], b["computed"]) == (a["items"], a["computed"])
    assert sorted(f["path"] for f in b["failed"]) == sorted(f["path"] for f in a["failed"])
    assert {str(path) for path in bad.values()} <= {f["path"] for f in b["failed"]}
    stores = open_store(local), open_store(cluster)
    assert stores[0].count() == stores[1].count() == a["computed"]
    keys = sorted(record.key for record in stores[0].iter_records(with_frames=False))
    assert keys == sorted(record.key for record in stores[1].iter_records(with_frames=False))
    np.testing.assert_allclose(stores[0].clip_matrix(keys), stores[1].clip_matrix(keys), rtol=1e-5)
