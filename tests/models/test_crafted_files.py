"""Every crafted model file gets one ``error:`` line naming it, exit 1 or 2, no traceback,
in bounded time and memory, and no module the file names is imported.

The files are made by ``_crafted.py`` from real saved models (MFCC embeddings of real
spoken digits, or patches of the bundled set for the prototype network), and run through
``earmark predict`` in a fresh process each, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import _crafted as crafted
import numpy as np
import pytest

#: Peak resident memory allowed for refusing a file (the issue: under 1 GiB).
MAX_RSS_MIB = 1024
MAX_SECONDS = 30

@pytest.fixture(scope="module")
def sources(tmp_path_factory, bundled_clips):
    """Real model files to start from: logreg and random forest on MFCC, a prototype network."""
    from earmark.backends import get_backend
    from earmark.interpret.protonet import PrototypeNetwork
    from earmark.models import EarmarkModel
    from earmark.pipeline import clip_embeddings
    from earmark.store import MemoryStore

    directory = tmp_path_factory.mktemp("sources")
    backend = get_backend("mfcc")
    paths, labels = bundled_clips
    X, kept, _ = clip_embeddings(paths, backend, MemoryStore())
    y = np.asarray(labels)[kept]
    made = {
        "logreg": EarmarkModel.train(X, y, backend=backend).save(directory / "logreg.earmark"),
        "forest": EarmarkModel.train(X, y, backend=backend, learner="random-forest",
                                     n_estimators=5).save(directory / "forest.earmark"),
    }
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(24, 16, 16)).astype(np.float32)
    targets = np.repeat(["a", "b", "c"], 8)
    patches[targets == "b", :, :5] += 2
    network = PrototypeNetwork(channels=(4, 4), epochs=2, head_epochs=1).fit(patches, targets)
    network.patch_config_ = {"sr": 16000, "n_mels": 16, "n_fft": 512, "hop_length": 256,
                             "patch_frames": 16, "patch_hop_frames": 8, "max_patches": 4,
                             "spectrogram": "db"}
    made["network"] = network.save(directory / "network.earmark")
    from earmark.models import AnomalyModel

    made["anomaly"] = AnomalyModel.fit_bags([x[None] for x in X[:12]], backend=backend).save(
        directory / "anomaly.earmark")
    return made


@pytest.fixture(scope="module")
def bundled_clips():
    from earmark.datasets import load_dataset
    from earmark.datasets.bundled import demo_path

    manifest = load_dataset(demo_path())
    keep = np.isin(manifest.groups, manifest.groups[:1]) | (np.arange(len(manifest)) % 5 == 0)
    manifest = manifest.subset(keep)
    return [str(p) for p in manifest.paths], manifest.y.tolist()


def _cases(sources: dict, directory: Path) -> dict[str, Path]:
    c = crafted
    logreg, forest, network = sources["logreg"], sources["forest"], sources["network"]
    metadata, members = c.read(logreg)

    def meta(name, **changes):
        changed = json.loads(json.dumps(metadata))
        for key, value in changes.items():
            if callable(value):
                value(changed)
            else:
                changed[key] = value
        return c.write(directory / name, changed, members)

    def backend(change):
        def apply(m):
            change(m["backend"])
        return apply

    cases = {
        "eval": c.with_schema(logreg, directory / "eval.earmark", c.hide_function("builtins", "eval")),
        "os-system": c.with_schema(logreg, directory / "system.earmark", c.hide_function("os", "system")),
        "popen": c.with_schema(logreg, directory / "popen.earmark", c.object_node("subprocess", "Popen")),
        "hidden-function": c.with_schema(
            logreg, directory / "hidden.earmark", c.hide_function(c.MARKER_MODULE, "load_model")),
        "allowed-name-other-module": c.with_schema(
            logreg, directory / "renamed.earmark",
            c.rename_module("LogisticRegression", "earmark.__main__")),
        "marker-module-class": c.with_schema(
            logreg, directory / "marker-class.earmark",
            c.object_node(c.MARKER_MODULE, "PrototypeClassifier")),
        "hear-module": meta("hear.earmark", backend=backend(lambda b: b.update(
            backend="hear", params={"module": c.MARKER_MODULE, "weights": None}))),
        "unknown-backend": meta("unknown-backend.earmark", backend=backend(
            lambda b: b.update(backend=c.MARKER_MODULE))),
        "backend-param-not-declared": meta("param.earmark", backend=backend(
            lambda b: b["params"].update(module=c.MARKER_MODULE))),
        "backend-param-wrong-type": meta("param-type.earmark", backend=backend(
            lambda b: b["params"].update(n_mfcc={"nested": [1]}))),
        "tree-child-out-of-range": c.with_tree_nodes(forest, directory / "tree-range.earmark",
                                                     c.out_of_range_child),
        "tree-cycle": c.with_tree_nodes(forest, directory / "tree-cycle.earmark", c.self_loop),
        "tree-feature-out-of-range": c.with_tree_nodes(forest, directory / "tree-feature.earmark",
                                                       c.out_of_range_feature),
        "zip-bomb-2gib": c.zip_bomb(directory / "bomb.earmark", gib=2.0),
        "npz-bomb": c.npz_bomb(network, directory / "npz-bomb.earmark"),
        "deep-json": c.write(directory / "deep.earmark", "[" * 200_000 + "]" * 200_000, members),
        "newer-format": meta("newer.earmark", format_version=99),
        "mismatched-classes": meta("classes.earmark", classes=["x"] * len(metadata["classes"])),
        "unknown-kind": meta("kind.earmark", kind="graph-of-doom"),
        "nan-weights": c.with_schema(logreg, directory / "nan.earmark", lambda s: None),
        "network-nan-weights": c.with_arrays(network, directory / "net-nan.earmark", c.nan_head),
        "network-prototype-class": c.with_arrays(network, directory / "net-class.earmark",
                                                 change_metadata=c.prototype_class_out_of_range),
        "network-wrong-shape": c.with_arrays(network, directory / "net-shape.earmark",
                                             c.wrong_prototype_shape),
        "network-wrong-shape-metadata-agrees": c.with_arrays(
            network, directory / "net-shape2.earmark", c.wrong_prototype_shape,
            lambda m: m["shapes"].update({"param/prototypes": [
                m["shapes"]["param/prototypes"][0], m["shapes"]["param/prototypes"][1], 1,
                m["shapes"]["param/prototypes"][3]]})),
        "network-absurd-patches": c.with_arrays(network, directory / "net-patches.earmark",
                                                change_metadata=c.huge_patches),
        "not-a-zip": directory / "text.earmark",
        "anomaly-nan-statistics": c.with_arrays(sources["anomaly"], directory / "anomaly-nan.earmark",
                                                change_metadata=c.nan_section_statistics),
        "anomaly-nan-normal-set": c.with_arrays(sources["anomaly"], directory / "anomaly-nan-set.earmark",
                                                c.nan_normal_set),
        "anomaly-wrong-shape": c.with_arrays(sources["anomaly"], directory / "anomaly-shape.earmark",
                                             c.narrow_normal_set),
        "anomaly-nan-domain-threshold": c.with_arrays(sources["anomaly"], directory / "anomaly-domain.earmark",
                                                      change_metadata=c.nan_domain_threshold),
    }
    cases["not-a-zip"].write_text("just text")
    # NaN weights in the logistic regression's coefficients, hash made to match.
    _nan_coefficients(cases["nan-weights"])
    data = logreg.read_bytes()
    for fraction in (0.1, 0.5, 0.9, 0.999):
        name = f"truncated-{fraction}"
        cases[name] = directory / f"{name}.earmark"
        cases[name].write_bytes(data[: int(len(data) * fraction)])
    return cases


def _nan_coefficients(path: Path) -> None:
    import io
    import zipfile

    metadata, members = crafted.read(path)
    schema, files = crafted._skops_parts(members["pipeline.skops"])
    model = crafted._find(schema, lambda n: n.get("__class__") == "LogisticRegression")
    coef = model["content"]["content"]["coef_"]["file"]
    array = np.load(io.BytesIO(files[coef]), allow_pickle=False)
    array[0, 0] = np.nan
    buffer = io.BytesIO()
    np.save(buffer, array)
    files[coef] = buffer.getvalue()
    members["pipeline.skops"] = crafted._skops_bytes(schema, files)
    crafted.write(path, metadata, members)
    assert zipfile.is_zipfile(path)


@pytest.fixture(scope="module")
def crafted_files(sources, tmp_path_factory):
    return _cases(sources, tmp_path_factory.mktemp("crafted"))


@pytest.fixture(scope="module")
def refusals(crafted_files, sources, bundled_clips, tmp_path_factory):
    """``earmark predict`` on every crafted file (and the sources), each in its own process."""
    directory = tmp_path_factory.mktemp("refusals")
    marker = directory / "imported.txt"
    crafted.write_marker_module(directory, marker)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")])}
    names = list(crafted_files) + [f"source-{name}" for name in ("logreg", "forest")]
    paths = [str(crafted_files[n]) for n in crafted_files] + [str(sources["logreg"]), str(sources["forest"])]
    out = directory / "results.json"
    subprocess.run([sys.executable, str(Path(__file__).with_name("_refusals.py")), bundled_clips[0][0],
                    str(out), *paths], check=True, env=env, timeout=900)
    results = dict(zip(names, json.loads(out.read_text())))
    for name, result in results.items():  # the figures, with pytest -s
        print(f"{name:40s} exit {result['returncode']}  {result['cpu_s']:6.2f} s CPU  "
              f"{result['rss_mib']:7.0f} MiB")
    return results, marker


CASES = [
    "eval", "os-system", "popen", "hidden-function", "allowed-name-other-module",
    "marker-module-class", "hear-module", "unknown-backend", "backend-param-not-declared",
    "backend-param-wrong-type", "tree-child-out-of-range", "tree-cycle",
    "tree-feature-out-of-range", "zip-bomb-2gib", "npz-bomb", "deep-json", "newer-format",
    "mismatched-classes", "unknown-kind", "nan-weights", "network-nan-weights",
    "network-prototype-class", "network-wrong-shape", "network-wrong-shape-metadata-agrees",
    "network-absurd-patches", "not-a-zip", "truncated-0.1", "truncated-0.5", "truncated-0.9",
    "truncated-0.999", "anomaly-nan-statistics", "anomaly-nan-normal-set", "anomaly-wrong-shape",
    "anomaly-nan-domain-threshold",
]


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_model_file_is_refused_cleanly(case, refusals):
    results, marker = refusals
    result = results[case]
    name = Path(result["model"]).name
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
    assert result["returncode"] in (1, 2), result
    assert "Traceback" not in result["stderr"], result["stderr"][-2000:]
    assert len(errors) == 1 and name in errors[0], result["stderr"]
    # CPU seconds, imports included: the wall clock of a loaded test machine says little.
    assert result["cpu_s"] < MAX_SECONDS, result
    assert result["rss_mib"] < MAX_RSS_MIB, result["rss_mib"]
    assert not marker.exists(), "a module named by a model file was imported"


def test_every_crafted_file_is_tested(crafted_files):
    assert sorted(crafted_files) == sorted(CASES)


def test_the_sources_themselves_predict(refusals, bundled_clips):
    """The crafted files start from working models: refusing them is about the change."""
    results, _ = refusals
    for name in ("source-logreg", "source-forest"):
        assert results[name]["returncode"] == 0, results[name]["stderr"][-2000:]
