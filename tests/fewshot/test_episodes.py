"""Few-shot episodes on real data: groups never leak, seeds repeat, figures make sense.

The classifiers are small stand-ins (``_standins.py``), real scikit-learn estimators with
known behaviour: nearest class means, and one that guesses at random.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _standins import MeanPrototypes, ParityLevels, RandomScores
from earmark.exceptions import ParameterError
from earmark.fewshot.episodes import EpisodeSampler, iter_episodes, split_classes
from earmark.fewshot.evaluation import FewShotResult, evaluate_episodes, mean_ci95
from earmark.fewshot.methods import METHODS, Method, make_method
from earmark.fewshot.plots import plot_fewshot

pytestmark = pytest.mark.usefixtures("one_blas_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_well_formed(episode, y, groups, *, shots, queries):
    support_groups = set(groups[episode.support].tolist())
    query_groups = set(groups[np.r_[episode.query, episode.unknown_query]].tolist())
    assert support_groups.isdisjoint(query_groups), f"episode {episode.index} shares a group"
    labels, counts = np.unique(y[episode.support], return_counts=True)
    assert sorted(labels.tolist()) == sorted(episode.classes.tolist())
    assert set(counts.tolist()) == {shots}
    assert set(y[episode.query].tolist()) == set(episode.classes.tolist())
    assert set(y[episode.unknown_query].tolist()) == set(episode.unknown_classes.tolist())
    assert set(episode.classes.tolist()).isdisjoint(episode.unknown_classes.tolist())
    every = np.r_[episode.support, episode.query, episode.unknown_query]
    assert len(set(every.tolist())) == len(every), "an item is used twice"
    for part in (episode.query, episode.unknown_query):
        assert np.unique(y[part], return_counts=True)[1].max(initial=0) <= queries


# ------------------------------------------------------------------ drawing
@pytest.mark.parametrize("shots", [1, 5])
def test_support_and_query_never_share_a_speaker(fsdd, shots):
    """FSDD speakers say every digit: one split of the speakers serves all classes."""
    episodes = list(iter_episodes(
        fsdd.y, shots=shots, groups=fsdd.speakers, ways=5, unknown_ways=2, episodes=200
    ))
    for episode in episodes:
        _assert_well_formed(episode, fsdd.y, fsdd.speakers, shots=shots, queries=15)
        assert (episode.ways, len(episode.unknown_classes)) == (5, 2)
    # Each speaker has 4 takes of a digit: the support side is as few speakers as the
    # shots need, a different draw each episode.
    for episode in episodes:
        assert len(set(fsdd.speakers[episode.support])) == (1 if shots <= 4 else 2)
    assert set().union(*(fsdd.speakers[e.support] for e in episodes)) == set(fsdd.speakers)


@pytest.mark.parametrize("dataset", ["speech_commands_dir", "philharmonia_dir"])
def test_groups_stay_apart_on_real_manifests(dataset, request):
    """Speech Commands speakers span several words; Philharmonia's instrument/dynamic
    groups belong to one class each. Neither may leak, at any shots."""
    from earmark.datasets import load_dataset

    manifest = load_dataset(request.getfixturevalue(dataset))
    y, groups = manifest.y, manifest.groups
    for shots in (1, 5):
        sampler = EpisodeSampler(y, shots=shots, groups=groups, ways=5, unknown_ways=1)
        assert sampler.problem is None
        for index in range(100):
            episode = sampler.episode(index)
            assert episode.dropped == ()
            _assert_well_formed(episode, y, groups, shots=shots, queries=15)


def test_a_class_in_a_single_group_is_left_out_with_a_note():
    y = np.repeat(["a", "b", "c", "d"], 6)
    groups = np.r_[np.tile([1, 2, 3], 6), np.full(6, 9)]  # every "d" from one speaker
    sampler = EpisodeSampler(y, shots=1, groups=groups, ways=3)
    assert sampler.eligible == ["a", "b", "c"]
    assert any("'d'" in note and "one group" in note for note in sampler.notes)
    too_many = EpisodeSampler(y, shots=1, groups=groups, ways=4)
    assert "need 4 eligible classes, got 3" in too_many.problem
    with pytest.raises(ParameterError, match="eligible"):
        too_many.episode(0)


def test_classes_no_split_can_serve_together_are_dropped_and_said_so():
    """Each of "a" and "b" can be split alone, but not both: three support items of
    "a" are all in group 1, those of "b" in group 2, and each has its only other item in
    the other's group. "c" and "d" have groups of their own."""
    y = np.array(list("aaaa" "bbbb" "cccc" "dddd"))
    groups = np.array([1, 1, 1, 2, 2, 2, 2, 1, 3, 3, 4, 4, 5, 5, 6, 6])
    X = np.random.default_rng(0).normal(size=(16, 3))
    sampler = EpisodeSampler(y, shots=2, groups=groups, ways="all")
    assert sampler.eligible == ["a", "b", "c", "d"]
    episode = sampler.episode(0)
    assert episode.dropped == ("a", "b") and episode.classes.tolist() == ["c", "d"]
    _assert_well_formed(episode, y, groups, shots=2, queries=15)
    result = evaluate_episodes(X, y, groups=groups, estimator=MeanPrototypes(), ways="all",
                               shots=2, episodes=5)
    assert any("a, b dropped" in warning for warning in result.warnings)


def test_episode_i_is_reproducible_alone_and_the_seed_matters(fsdd):
    options = dict(groups=fsdd.speakers, ways=5, unknown_ways=1)
    first = list(iter_episodes(fsdd.y, shots=5, episodes=30, **options))
    alone = EpisodeSampler(fsdd.y, shots=5, **options).episode(17)
    assert np.array_equal(alone.support, first[17].support)
    assert np.array_equal(alone.query, first[17].query)
    assert np.array_equal(alone.unknown_query, first[17].unknown_query)
    # The same episode index has the same classes at every shot count (paired points).
    one_shot = EpisodeSampler(fsdd.y, shots=1, **options).episode(17)
    assert one_shot.classes.tolist() == alone.classes.tolist()
    other = list(iter_episodes(fsdd.y, shots=5, episodes=30, seed=1, **options))
    assert any(not np.array_equal(a.support, b.support) for a, b in zip(first, other))
    assert len({tuple(e.classes) for e in first}) > 10, "classes vary across episodes"


def test_classes_restrict_episodes_to_the_novel_split(fsdd):
    base, novel = split_classes(fsdd.y, 4, seed=3)
    assert len(base) == 4 and len(novel) == 6
    assert sorted(base + novel) == sorted(set(fsdd.y.tolist()))
    assert split_classes(fsdd.y, 0.4, seed=3) == (base, novel)
    assert split_classes(fsdd.y, 4, seed=4) != (base, novel)
    for episode in iter_episodes(fsdd.y, shots=1, groups=fsdd.speakers, classes=novel,
                                 ways=4, unknown_ways=2, episodes=50):
        assert set(episode.classes) | set(episode.unknown_classes) <= set(novel)
    with pytest.raises(ParameterError, match="not among the labels"):
        EpisodeSampler(fsdd.y, shots=1, classes=["cat"])
    with pytest.raises(ParameterError):
        split_classes(fsdd.y, 10)


def test_folds_mode_takes_queries_from_the_held_out_fold(fsdd):
    fold_of = {"george": 1, "jackson": 1, "lucas": 2, "nicolas": 2, "theo": 3, "yweweler": 3}
    folds = np.array([fold_of[s] for s in fsdd.speakers])
    held = EpisodeSampler(fsdd.y, shots=5, folds=folds, query_fold=2, ways="all")
    assert held.strategy == "support from the training folds, queries from fold 2"
    for index in range(20):
        episode = held.episode(index)
        assert set(folds[episode.query].tolist()) == {2}
        assert 2 not in set(folds[episode.support].tolist())
        assert episode.ways == 10 and episode.query_fold == "2"
        assert len(episode.query) == 10 * 8  # 2 speakers x 4 takes: fewer than 15 queries
    rotating = EpisodeSampler(fsdd.y, shots=1, folds=folds, ways=5)
    assert [rotating.episode(i).query_fold for i in range(4)] == ["1", "2", "3", "1"]
    # A group that spans folds never supports a query of its own group.
    leaky = folds.copy()
    leaky[np.flatnonzero(fsdd.speakers == "theo")[:10]] = 2
    mixed = EpisodeSampler(fsdd.y, shots=1, folds=leaky, query_fold=2, groups=fsdd.speakers)
    assert any("share a group with the held-out fold" in note for note in mixed.notes)
    for index in range(50):
        episode = mixed.episode(index)
        assert "theo" not in set(fsdd.speakers[episode.support].tolist())
    with pytest.raises(ParameterError, match="not one of the folds"):
        EpisodeSampler(fsdd.y, shots=1, folds=folds, query_fold=7)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(ways=1), "ways"),
        (dict(shots=0), "shots"),
        (dict(queries=0), "queries"),
        (dict(query_fold=1), "needs folds"),
        (dict(groups=[1, 2]), "shape"),
    ],
)
def test_bad_parameters_say_what_was_expected(fsdd, options, message):
    options = {"shots": 1, **options}
    with pytest.raises(ParameterError, match=message):
        EpisodeSampler(fsdd.y, **options)


# ----------------------------------------------------------------- scoring
@pytest.fixture(scope="module")
def prototypes(fsdd):
    return evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=MeanPrototypes(), ways=5,
        shots=(1, 5), episodes=300, unknown_ways=2,
    )


def test_prototypes_beat_chance_by_a_margin_and_grow_with_shots(prototypes):
    one, five = prototypes.point(1), prototypes.point(5)
    # Measured on MFCC (speakers apart): 39 % at 1 shot, 55 % at 5 (chance 20 %).
    assert one.mean > one.chance + 0.1
    assert five.mean > one.mean + 0.08
    assert (one.ways, one.n_episodes, one.queries_per_class) == (5, 300, 15.0)
    assert prototypes.strategy == "support and query from disjoint groups (6 groups)"
    # Nothing wrong with the data; only that the means' own threshold (their farthest
    # support item) misses speakers the support never heard.
    assert [w.split(":")[0] for w in prototypes.warnings] == ["5-shot"]
    assert "own 'unknown' threshold kept" in prototypes.warnings[0]


def test_confidence_interval_is_the_mean_over_episodes_and_shrinks(fsdd, prototypes):
    point = prototypes.point(5)
    assert point.mean == pytest.approx(np.mean(point.accuracy))
    assert point.ci95 == pytest.approx(1.96 * np.std(point.accuracy) / np.sqrt(300))
    few = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=MeanPrototypes(), shots=5,
        episodes=30, unknown_ways=2,
    )
    # The same seed gives the same first 30 episodes; more of them pin the mean down.
    assert few.point(5).accuracy == point.accuracy[:30]
    assert few.point(5).ci95 > 2 * point.ci95


def test_a_random_scorer_rejects_one_unknown_in_ten_and_a_good_one_more(fsdd, prototypes):
    guess = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=RandomScores(), shots=1,
        episodes=300, unknown_ways=2,
    ).point(1)
    assert guess.mean == pytest.approx(0.2, abs=0.03)
    assert np.mean(guess.rejection) == pytest.approx(0.10, abs=0.025)
    assert np.mean(guess.auroc) == pytest.approx(0.5, abs=0.03)
    # Well-separated classes: prototypes reject nearly every unknown query.
    rng = np.random.default_rng(0)
    y = np.repeat(list("abcdefgh"), 20)
    centres = rng.normal(scale=10.0, size=(8, 16))
    X = centres[np.repeat(np.arange(8), 20)] + rng.normal(size=(160, 16))
    separated = evaluate_episodes(
        X, y, groups=np.tile(np.arange(10), 16), estimator=MeanPrototypes(), shots=5,
        episodes=100, unknown_ways=2,
    ).point(5)
    assert np.mean(separated.rejection) > 0.8 and np.mean(separated.auroc) > 0.95
    # Its own threshold (the farthest support item) keeps most known queries, rejects unknowns.
    assert np.mean(separated.own_coverage) > 0.5
    assert np.mean(separated.own_rejection) > 0.8
    # On spoken digits an unknown digit is hard to tell from a known one, but not random.
    real = prototypes.point(5)
    assert len(real.rejection) == len(real.auroc) == len(real.own_rejection) == 300
    assert np.mean(real.auroc) > np.mean(guess.auroc)


def test_an_unknown_threshold_that_misses_new_speakers_is_called_out(fsdd):
    """Queries from speakers the support never heard. 4-shot: each digit's support is one
    speaker's four takes, so the prototypes' own 'unknown' threshold can only be learned
    from that speaker's spread and keeps far fewer known digits than asked (MFCC: 1 % for
    90 %); the result says so. 5-shot: the support spans two speakers, the threshold is
    learned from items held out by speaker (evaluate_episodes hands fit the support's
    groups) and keeps 75 %. Drawn at random it keeps about what was asked and says
    nothing."""
    options = dict(estimator="prototype", ways=5, shots=(4, 5), episodes=30, unknown_ways=2)
    grouped = evaluate_episodes(fsdd.X, fsdd.y, groups=fsdd.speakers, **options)
    one_speaker = np.mean(grouped.point(4).own_coverage)
    two_speakers = np.mean(grouped.point(5).own_coverage)
    assert one_speaker < 0.3
    assert two_speakers > one_speaker + 0.4
    note = next(w for w in grouped.warnings if w.startswith("4-shot: the classifier's own"))
    assert note.startswith(f"4-shot: the classifier's own 'unknown' threshold kept {one_speaker:.0%}")
    assert "in 30 of 30 episodes each class's support came from a single group" in note
    random = evaluate_episodes(fsdd.X, fsdd.y, **options)
    assert np.mean(random.point(5).own_coverage) > 0.8
    assert not any("own 'unknown' threshold" in w for w in random.warnings)


def test_the_support_groups_reach_fit_and_never_the_queries(fsdd):
    """A method whose fit takes groups gets each support item's own group."""
    seen = []

    class Recording(MeanPrototypes):
        def fit(self, X, y, groups=None):
            seen.append((np.asarray(X).copy(), None if groups is None else np.asarray(groups)))
            return super().fit(X, y)

    sampler = EpisodeSampler(fsdd.y, shots=3, groups=fsdd.speakers, ways=4, seed=0)
    evaluate_episodes(fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=Recording(), ways=4,
                      shots=3, episodes=5, seed=0)
    assert len(seen) == 5
    for index, (X, groups) in enumerate(seen):
        episode = sampler.episode(index)
        np.testing.assert_array_equal(X, fsdd.X[episode.support])
        np.testing.assert_array_equal(groups, fsdd.speakers[episode.support])
        assert set(groups.tolist()).isdisjoint(fsdd.speakers[episode.query].tolist())
    seen.clear()
    evaluate_episodes(fsdd.X, fsdd.y, estimator=Recording(), ways=4, shots=3, episodes=2)
    assert [groups for _, groups in seen] == [None, None]


def test_centring_on_the_collection_tells_unknown_classes_apart_better(fsdd):
    """5-way 5-shot with 5 unknown digits, drawn at random (exchangeable): prototypes
    centred on the mean of all clips (labels unused) separate unknown from known queries
    better than centred on each support set's mean, and their own threshold still keeps
    about the asked 90 %. Measured on MFCC: AUROC 0.715 -> 0.785, kept 0.91 -> 0.91."""
    options = dict(ways=5, shots=5, episodes=100, unknown_ways=5, seed=0)
    support = evaluate_episodes(fsdd.X, fsdd.y, center="support", **options)
    collection = evaluate_episodes(fsdd.X, fsdd.y, **options)
    assert support.center == "each support set's mean"
    assert collection.center == f"the mean of all {len(fsdd.y)} items (labels unused)"
    assert "centred on the mean of all" in collection.summary()
    gain = np.mean(collection.point(5).auroc) - np.mean(support.point(5).auroc)
    assert gain > 0.04, gain
    assert np.mean(collection.point(5).own_coverage) == pytest.approx(0.9, abs=0.03)
    # Methods that do not centre say nothing about it.
    assert evaluate_episodes(fsdd.X, fsdd.y, estimator=MeanPrototypes(), **options).center is None
    with pytest.raises(ParameterError, match="center"):
        evaluate_episodes(fsdd.X, fsdd.y, center="queries", **options)
    # A centre the caller chose is kept.
    from earmark.fewshot.prototypes import PrototypeClassifier

    mine = PrototypeClassifier(center=np.zeros(fsdd.X.shape[1]))
    kept = evaluate_episodes(fsdd.X, fsdd.y, estimator=mine, **dict(options, episodes=5))
    assert kept.center == "the centre the estimator was given"


def test_coarse_accuracy_maps_leaves_to_parents(fsdd):
    from earmark.taxonomy import Taxonomy

    parity = Taxonomy.from_mapping(
        {str(d): "even" if d % 2 == 0 else "odd" for d in range(10)}
    )
    result = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=MeanPrototypes(), shots=1,
        episodes=60, taxonomy=parity,
    )
    point = result.point(1)
    assert result.coarse_source == "parent of the predicted class"
    # A right digit is a right parity, so coarse accuracy is never below leaf accuracy.
    assert all(c >= a for c, a in zip(point.coarse_accuracy, point.accuracy))
    assert point.figure("coarse_accuracy")[0] > point.mean
    levels = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=ParityLevels(), shots=1,
        episodes=60, taxonomy=parity,
    )
    assert levels.coarse_source == "predict_levels()['parity']"
    # ParityLevels answers "odd" for everything: right for the odd queries only.
    assert levels.point(1).accuracy == point.accuracy
    assert np.mean(levels.point(1).coarse_accuracy) == pytest.approx(0.5, abs=0.1)


def test_every_eligible_class_in_all_way_episodes(fsdd):
    reports = []
    result = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=MeanPrototypes(), ways="all",
        shots=(1, 16, 21), episodes=20, unknown_ways=2,
        progress=lambda done, total: reports.append((done, total)),
    )
    assert reports == [(done, 40) for done in range(1, 41)]
    assert [(p.shots, p.ways) for p in result.points] == [(1, 8), (16, 8)]
    # 16 shots need 4 speakers for support, leaving 2 x 4 = 8 queries per class.
    assert result.point(16).queries_per_class == 8.0
    assert [s["shots"] for s in result.skipped] == [21]
    assert any("fewer than 15 queries" in w for w in result.warnings)
    assert result.point(1).mean > 1 / 8 + 0.05


def test_result_round_trips_through_json_and_draws(tmp_path, prototypes):
    data = json.loads(prototypes.to_json())
    again = FewShotResult.from_dict(data)
    assert again.to_dict() == prototypes.to_dict()
    assert data["points"][0]["rejection"]["mean"] == pytest.approx(
        np.mean(prototypes.point(1).rejection)
    )
    assert "5-way 1-shot" in prototypes.summary() and "AUROC" in prototypes.summary()
    figure = plot_fewshot({"means": prototypes})
    assert len(figure.axes) == 2, "open-set results get a rejection panel"
    path = plot_fewshot([data], tmp_path / "fewshot.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ParameterError):
        plot_fewshot([])


def test_methods_by_name_and_adding_one(fsdd, monkeypatch):
    assert {"prototype", "prototype-euclidean", "prototype-cosine", "hierarchical",
            "logreg"} <= set(METHODS)
    assert make_method("logreg").steps[-1][0] == "classifier"
    with pytest.raises(ParameterError, match="unknown few-shot method"):
        make_method("magic")
    monkeypatch.setitem(METHODS, "means", Method("test", lambda **context: MeanPrototypes()))
    by_name = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator="means", shots=1, episodes=10
    )
    direct = evaluate_episodes(
        fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=MeanPrototypes(), shots=1, episodes=10
    )
    assert by_name.method == "means"
    assert by_name.point(1).accuracy == direct.point(1).accuracy


def test_the_shipped_prototype_methods_by_name(fsdd):
    """The real classifiers behind the names: above chance, their own unknown threshold
    reported, and the hierarchical one's coarse answer scored at its parent level."""
    parity = {str(d): "even" if d % 2 == 0 else "odd" for d in range(10)}
    for name in ("prototype", "prototype-euclidean", "hierarchical"):
        result = evaluate_episodes(
            fsdd.X, fsdd.y, groups=fsdd.speakers, estimator=name, shots=5, episodes=20,
            unknown_ways=1, taxonomy=parity,
        )
        point = result.point(5)
        assert result.method == name
        assert point.mean > point.chance + 0.1, name
        assert len(point.own_coverage) == len(point.own_rejection) == 20, name
        assert 0.0 <= np.mean(point.own_coverage) <= 1.0
        expected = "predict_levels()['level 1']" if name == "hierarchical" else "parent of"
        assert result.coarse_source.startswith(expected), name
    with pytest.raises(ParameterError, match="needs a taxonomy"):
        evaluate_episodes(fsdd.X, fsdd.y, estimator="hierarchical", shots=1, episodes=1)


def test_a_learner_is_a_reference_method_and_without_groups_a_warning(fsdd):
    result = evaluate_episodes(
        fsdd.X, fsdd.y, estimator="logreg", ways=3, shots=2, episodes=10
    )
    assert result.method == "logreg"
    assert any("leaks" in warning for warning in result.warnings)
    assert result.point(2).mean > 1 / 3


def test_mean_ci95():
    assert mean_ci95([0.5, 0.5]) == (0.5, 0.0)
    mean, ci = mean_ci95([0.0, 1.0] * 50)
    assert mean == 0.5 and ci == pytest.approx(1.96 * 0.5 / 10)
