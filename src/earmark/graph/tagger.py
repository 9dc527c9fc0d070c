"""A graph tagger: regions of a frozen time-frequency map as nodes, labels as nodes too.

Longer than ~500 lines: the estimator, the checks of its learned state (a file's are read
from a stranger) and its file scoring belong together; the torch network lives in
``_torch.py``, the explanation in ``links.py``.

After ATGNN (Singh, Steinmetz, Benetos, Phan & Stowell, "ATGNN: Audio Tagging Graph
Neural Network", IEEE Signal Processing Letters 2024): a spectrogram's regions become the
nodes of a graph, a few message-passing layers mix each region with its time-frequency
neighbours and with the regions that look like it, and one learnable **label node** per
class attends to the region nodes; the class's score is read from what its label node
gathered. The attention of a label node over the regions is the explanation: it says
which time-frequency regions a tag came from (:mod:`earmark.graph.links`).

What is learned here is small, because the regions come from a frozen pretrained
network: for ``encoder="aisfx"`` each node is one cell of aiSFX's 512 x 12 x 12 maps of a
2.35 s patch, taken before pooling (:func:`earmark.interpret.encoders.frozen_maps`, the
maps the aiSFX prototype network starts from), averaged over ``pool`` cells (by default
pairs of neighbouring bands: 12 time steps x 6 band groups = 72 nodes); for
``"log-mel"`` each node is an 8 x 8 cell of a decibel log-mel patch. Learned: a linear
projection of node features to ``hidden`` dimensions, an embedding per band group,
``n_layers`` max-relative graph layers, the label nodes and a readout per class. Edges
are recomputed per layer from the current features: ``k`` nearest neighbours by cosine
similarity (``mode="graph"``) or membership of one of ``k`` k-means clusters, each a
hyperedge (``mode="hypergraph"``), besides the fixed time-frequency grid.

Beside the label nodes, a **pooled path** adds to each class's logit a linear function of the patch's pooled node features (aiSFX's own
clip pooling: mean over bands, maximum over time). The hidden width (32) is a bottleneck
the label nodes read through; the pooled path gives the tagger what a linear probe on the
pooled embedding sees, and the graph adds what the regions and their neighbours say.
Measured with ``benchmarks/graph.py``'s heads, same maps and splits (without -> with the
pooled path, started at zero; ``benchmarks/graph.py``'s seed, then two seeds of a side
run): Philharmonia 86.4 -> 87.3 % (86.8 -> 87.7 / 88.2; linear probe 87.1 %), Speech
Commands mini (10 clips per word) 18.8 -> 18.0 % (17.9 / 10.8 -> 16.2 / 20.2; probe
23.3 %), two-instrument mixtures mAP 0.346 -> 0.462 (0.344 / 0.379 -> 0.462 / 0.492; probe
0.460). Started at zero, the pooled path was trained with the graph by AdamW for 40
epochs, and with 10 clips per word the graph took the lead and overfitted. It now
starts at the probe itself (``pooled_init="probe"``: a standardised logistic regression on
the training patches' pooled maps, folded into the path), so training starts from the
probe's answers and the graph adds to them: Speech Commands 17.1 -> 23.1 % (probe 23.3),
Philharmonia 87.7 -> 87.7 %, mixtures mAP 0.462 -> 0.469 (zero -> probe start, one run of
the benchmark). Its evidence is not localised by the class-to-region links (the
attention); the deletion/insertion check of ``explain --method links`` scores the whole
logit, both paths.

``pooled_path="auto"`` (the default) leaves it out in one case: a multi-label tagger
whose training items carry one tag each. There the pooled path learns that one source's
sound means the others are absent, and a mixture's second source then pulls each tag's
score down: trained on single Philharmonia notes and tested on two-note mixtures
(``tests/graph/test_graph_links.py``'s set, 24 mixtures, two seeds), tags found at 0.5
fell from 32 / 27 of 48 to 15 / 16 (mAP 0.983 / 0.953 without, 0.966 / 0.968 with).
The label nodes read each source's own regions and keep their scores.

Single-label training uses cross-entropy, multi-label (``y`` as label sets or an
indicator matrix) binary cross-entropy per class. Probabilities are calibrated by a
temperature fitted on a held-out fifth of the training groups, then the network is fitted
again on all of them (``calibrate=True``).

Torch is needed to fit and to predict (the aiSFX maps are computed in torch anyway).
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..exceptions import EarmarkError, ParameterError

__all__ = ["GraphTagger", "MODES", "POOLED_INITS", "parameter_names", "clip_logits", "clip_proba", "fit_manifest", "node_maps"]

def parameter_names(n_layers: int, pooled_path: bool = False) -> tuple[str, ...]:
    """Every learned array of a network with ``n_layers`` message-passing layers (and the
    pooled path, when it has one)."""
    layers = [name for layer in range(n_layers)
              for name in (f"layer{layer}.weight", f"layer{layer}.bias")]  # fmt: skip
    pooled = ("pooled.weight", "pooled.bias") if pooled_path else ()
    return ("input.weight", "input.bias", "band_embedding", *layers, "label_nodes",
            "readout.weight", "readout.bias", *pooled)  # fmt: skip


#: How edges beyond the time-frequency grid are made.
MODES = ("graph", "hypergraph")
#: Where the pooled path starts (``GraphTagger(pooled_init=...)``).
POOLED_INITS = ("zero", "probe")
#: Side of a log-mel region node, in frames and bands.
LOG_MEL_CELL = 8


def node_maps(encoder: str, X: np.ndarray, pool=(1, 2), *, chunk: int = 64) -> np.ndarray:
    """Region-node features of patches, before standardisation.

    Parameters
    ----------
    encoder : {"aisfx", "log-mel"}
    X : np.ndarray [shape=(n, frames, mels)]
        aiSFX patches (n, 100, 96), or decibel log-mel patches whose sides are multiples
        of 8.
    pool : (int, int)
        Cells averaged into one node, along time and frequency.

    Returns
    -------
    np.ndarray [shape=(n, features, n_time, n_freq), dtype=float32]
        512 features per node for aiSFX (12 / pool[0] x 12 / pool[1] nodes); 64 for
        log-mel.
    """
    from ..interpret.encoders import check_encoder, frozen_maps

    check_encoder(encoder)
    out = []
    # In chunks and pooled at once: an aiSFX map is 295 kB per patch before pooling.
    for start in range(0, len(X), chunk):
        block = np.asarray(X[start:start + chunk], dtype=np.float32)
        if encoder == "aisfx":
            maps = frozen_maps("aisfx", block)
        else:
            n, frames, mels = block.shape
            cell = LOG_MEL_CELL
            maps = block.reshape(n, frames // cell, cell, mels // cell, cell)
            maps = maps.transpose(0, 2, 4, 1, 3).reshape(n, cell * cell, frames // cell, mels // cell)
        out.append(_average_pool(maps, pool))
    return np.concatenate(out).astype(np.float32)


def _average_pool(maps: np.ndarray, pool) -> np.ndarray:
    n, c, h, w = maps.shape
    pt, pf = pool
    h, w = h - h % pt, w - w % pf
    return maps[:, :, :h, :w].reshape(n, c, h // pt, pt, w // pf, pf).mean(axis=(3, 5))


class GraphTagger(ClassifierMixin, BaseEstimator):
    """Tag patches with a graph network over frozen time-frequency maps.

    Parameters
    ----------
    encoder : {"aisfx", "log-mel"}
        Nodes from aiSFX's frozen 512 x 12 x 12 maps, or from 8 x 8 cells of log-mel.
    mode : {"graph", "hypergraph"}
        Edges beyond the grid: k nearest neighbours, or k cluster hyperedges.
    hidden : int
        Width of the node features after the input projection.
    n_layers : int
        Message-passing layers.
    k : int
        Nearest neighbours per node (``"graph"``) or hyperedges (``"hypergraph"``).
    pool : (int, int)
        Map cells averaged into one node (time, frequency).
    epochs, batch_size, learning_rate, weight_decay : see :func:`earmark.graph._torch.train`
    dropout : float
        Share of node input features dropped while training.
    calibrate : bool
        Fit a temperature on a held-out fifth of the training groups (then refit on all).
    pooled_path : bool or "auto"
        Add a linear path from the pooled node features to the logits (see the module
        docstring); ``"auto"``: yes, unless the tagger is multi-label and every training
        item has one tag. Model files written before it existed load without it.
    pooled_init : {"probe", "zero"}
        Where the pooled path starts: at the linear probe, a standardised logistic
        regression (C=1) on the pooled maps of the training patches, so that training
        starts from what a probe answers and the graph adds to it; or at zero (the graph
        learns first; see the module docstring).
    random_state : int, RandomState or None

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    multilabel_ : bool
    params_ : dict of np.ndarray
    mean_, scale_ : float
        Standardisation of the node features.
    node_shape_ : (int, int, int)
        ``(features, n_time, n_freq)`` of the node maps.
    temperature_ : float
    pooled_path_ : bool
        Whether the network has the pooled path (``pooled_path`` resolved).
    loss_curve_ : list of float
    patch_config_ : dict or None
        Set by :func:`fit_manifest`, so files can be scored.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 32, 32)).astype(np.float32)
    >>> X[20:, :, :8] += 3  # class "b" is loud in the low bands
    >>> y = ["a"] * 20 + ["b"] * 20
    >>> tagger = GraphTagger(encoder="log-mel", pool=(1, 1), hidden=8, epochs=10).fit(X, y)
    >>> tagger.predict_proba(X[:2]).shape, tagger.links(X[:2]).shape
    ((2, 2), (2, 2, 4, 4))
    """

    def __init__(self, *, encoder: str = "aisfx", mode: str = "graph", hidden: int = 32,
                 n_layers: int = 2, k: int = 8, pool: tuple[int, int] = (1, 2), epochs: int = 40,
                 batch_size: int = 32, learning_rate: float = 3e-3, weight_decay: float = 1e-2,
                 dropout: float = 0.1, calibrate: bool = True, pooled_path: bool | str = "auto",
                 pooled_init: str = "probe",
                 random_state=0):  # fmt: skip
        self.encoder = encoder
        self.mode = mode
        self.hidden = hidden
        self.n_layers = n_layers
        self.k = k
        self.pool = pool
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.calibrate = calibrate
        self.pooled_path = pooled_path
        self.pooled_init = pooled_init
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, maps=None, groups=None):
        """Train on labelled patches.

        Parameters
        ----------
        X : np.ndarray [shape=(n, frames, mels)]
            Patches (see :func:`node_maps`); may be None when ``maps`` are given.
        y : array-like [shape=(n,)] or [shape=(n, n_classes)]
            A label per patch; or, for multi-label tagging, a set (list, tuple) of labels
            per patch, or a 0/1 indicator matrix (classes then ``0..n_classes-1``).
        maps : np.ndarray [shape=(n, features, n_time, n_freq)], optional
            ``node_maps(encoder, X, pool)``, when already computed.
        groups : array-like [shape=(n,)], optional
            Patches sharing a group (recording, speaker) stay together when a part is
            held out for calibration.

        Returns
        -------
        self
        """
        self._check_params()
        maps = self._maps(X, maps)
        targets, classes, multilabel = _targets(y, len(maps))
        self.classes_, self.multilabel_ = classes, multilabel
        self.pooled_path_ = bool(self.pooled_path) if self.pooled_path != "auto" else not (
            multilabel and bool((targets.sum(axis=1) <= 1).all())
        )
        self.mean_ = float(maps.mean())
        self.scale_ = float(maps.std()) or 1.0
        self.node_shape_ = tuple(int(v) for v in maps.shape[1:])
        inputs = self._standardise(maps)
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        self.temperature_ = 1.0
        if self.calibrate:
            held = _held_out(groups, targets, multilabel, len(maps), rng)
            if held is not None:
                params, _ = self._train(inputs[~held], targets[~held], rng)
                logits = self._logits(params, inputs[held])
                self.temperature_ = _fit_temperature(logits, targets[held], multilabel)
        self.params_, self.loss_curve_ = self._train(inputs, targets, rng)
        self.n_features_in_ = None if X is None else int(np.prod(np.shape(X)[1:]))
        self.patch_config_ = None
        return self

    def _train(self, inputs, targets, rng):
        from ..training import single_thread

        torch_side = _torch()
        params = torch_side.initial_params(
            in_features=inputs.shape[1], hidden=int(self.hidden), n_freq=inputs.shape[3],
            n_layers=int(self.n_layers), n_classes=len(self.classes_), rng=rng,
            pooled_path=bool(self.pooled_path_),
        )
        if self.pooled_path_ and self.pooled_init == "probe":
            params["pooled.weight"], params["pooled.bias"] = _probe(inputs, targets, self.multilabel_)
        # Small dense graphs on a shared machine: one thread wastes least.
        with single_thread():
            return torch_side.train(
                params, inputs, targets, multilabel=self.multilabel_, n_layers=int(self.n_layers),
                k=int(self.k), mode=self.mode, epochs=int(self.epochs),
                batch_size=int(self.batch_size), learning_rate=float(self.learning_rate),
                weight_decay=float(self.weight_decay), dropout=float(self.dropout),
                seed=int(rng.integers(2**31 - 1)),
            )  # fmt: skip

    def _check_params(self) -> None:
        from ..interpret.encoders import check_encoder

        check_encoder(self.encoder)
        if self.mode not in MODES:
            raise ParameterError(f"expected mode one of {MODES}, got {self.mode!r}")
        limits = {"hidden": (1, 1024), "n_layers": (0, 16), "k": (0, 64), "epochs": (1, 10_000),
                  "batch_size": (1, 65_536)}  # fmt: skip
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or not low <= value <= high:
                raise ParameterError(f"expected {name} to be an integer in {low}..{high}, got {value!r}")
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise ParameterError(f"expected calibrate to be true or false, got {self.calibrate!r}")
        if not (isinstance(self.pooled_path, (bool, np.bool_)) or self.pooled_path == "auto"):
            raise ParameterError(f"expected pooled_path true, false or 'auto', got {self.pooled_path!r}")
        if self.pooled_init not in POOLED_INITS:
            raise ParameterError(f"expected pooled_init one of {POOLED_INITS}, got {self.pooled_init!r}")
        pool = tuple(self.pool) if isinstance(self.pool, (tuple, list)) else ()
        if len(pool) != 2 or not all(isinstance(p, Integral) and 1 <= p <= 12 for p in pool):
            raise ParameterError(f"expected pool as two integers in 1..12, got {self.pool!r}")
        ranges = {"learning_rate": (0.0, 10.0, False), "weight_decay": (0.0, 10.0, True),
                  "dropout": (0.0, 0.9, True)}  # (low, high, low allowed)  # fmt: skip
        for name, (low, high, closed) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value) \
                    or not (low <= value if closed else low < value) or value > high:
                raise ParameterError(f"expected {name} in {'[' if closed else '('}{low}, {high}], got {value!r}")

    # --------------------------------------------------------------- prediction
    def _maps(self, X, maps) -> np.ndarray:
        if maps is None:
            if X is None:
                raise ParameterError("expected patches X or their node maps")
            X = _check_patches(X, self.encoder)
            return node_maps(self.encoder, X, tuple(self.pool))
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 4 or maps.shape[0] == 0 or not np.isfinite(maps).all():
            raise ParameterError(f"expected finite node maps (n, features, time, freq), got {maps.shape}")
        return maps

    def _standardise(self, maps: np.ndarray) -> np.ndarray:
        return ((maps - self.mean_) / self.scale_).astype(np.float32)

    def _logits(self, params, inputs):
        return _torch().forward_numpy(params, inputs, n_layers=int(self.n_layers), k=int(self.k),
                                      mode=self.mode)[0]  # fmt: skip

    def forward(self, X=None, *, maps=None) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated logits and label-to-region attention of patches.

        Returns
        -------
        logits : np.ndarray [shape=(n, n_classes)]
            Divided by the temperature.
        attention : np.ndarray [shape=(n, n_classes, n_time, n_freq)]
            Each label node's attention over the region nodes (sums to 1 per class).
        """
        check_is_fitted(self, "params_")
        maps = self._maps(X, maps)
        if tuple(maps.shape[1:]) != tuple(self.node_shape_):
            raise ParameterError(f"expected node maps of shape (n, {self.node_shape_}), got {maps.shape}")
        logits, attention = _torch().forward_numpy(
            self.params_, self._standardise(maps), n_layers=int(self.n_layers), k=int(self.k),
            mode=self.mode,
        )
        return logits / self.temperature_, attention.reshape(len(maps), len(self.classes_), *maps.shape[2:])

    def decision_function(self, X=None, *, maps=None) -> np.ndarray:
        """Calibrated logits of patches, [shape=(n, n_classes)]."""
        return self.forward(X, maps=maps)[0]

    def predict_proba(self, X=None, *, maps=None) -> np.ndarray:
        """Probabilities of patches: softmax (single-label) or one sigmoid per class.

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
        """
        return _probabilities(self.decision_function(X, maps=maps), self.multilabel_)

    def predict(self, X=None, *, maps=None) -> np.ndarray:
        """Labels of patches, [shape=(n,)]; multi-label: a 0/1 matrix (n, n_classes)."""
        P = self.predict_proba(X, maps=maps)
        if self.multilabel_:
            return (P >= 0.5).astype(np.int64)
        return self.classes_[P.argmax(axis=1)]

    def links(self, X=None, *, maps=None) -> np.ndarray:
        """Class-to-region links: each label node's attention over the regions.

        Returns
        -------
        np.ndarray [shape=(n, n_classes, n_time, n_freq)]
        """
        return self.forward(X, maps=maps)[1]

    @property
    def n_parameters_(self) -> int:
        """Learned numbers (the frozen encoder and the standardisation not counted)."""
        check_is_fitted(self, "params_")
        return int(sum(value.size for value in self.params_.values()))

    # ---------------------------------------------------------- files and audio
    #: The model kind (:data:`earmark.models.KINDS`).
    kind = "graph-tagger"
    #: A graph tagger reads its own patches, not a backend's embeddings.
    backend_identity = None

    @property
    def training(self) -> dict[str, Any]:
        check_is_fitted(self, "params_")
        return {
            "n_parameters": self.n_parameters_,
            "multilabel": bool(self.multilabel_),
            "pooled_path": bool(self.pooled_path_),
            "temperature": float(self.temperature_),
            "final_loss": float(self.loss_curve_[-1]) if self.loss_curve_ else None,
        }

    def check_state(self) -> None:
        """Check that the learned arrays fit together (a file's are read from a stranger).

        Raises
        ------
        ParameterError
        """
        check_is_fitted(self, "params_")
        p = self.params_
        features, n_time, n_freq = self.node_shape_
        hidden, n_classes = int(self.hidden), len(self.classes_)
        expected = {"input.weight": (hidden, features), "input.bias": (hidden,),
                    "band_embedding": (n_freq, hidden), "label_nodes": (n_classes, hidden),
                    "readout.weight": (n_classes, hidden), "readout.bias": (n_classes,)}  # fmt: skip
        for layer in range(int(self.n_layers)):
            expected[f"layer{layer}.weight"] = (hidden, 2 * hidden)
            expected[f"layer{layer}.bias"] = (hidden,)
        if self.pooled_path_:
            expected["pooled.weight"] = (n_classes, features)
            expected["pooled.bias"] = (n_classes,)
        if set(p) != set(parameter_names(int(self.n_layers), bool(self.pooled_path_))):
            raise ParameterError(f"arrays {sorted(p)} do not match a {self.n_layers}-layer network")
        for name, shape in expected.items():
            if p[name].shape != shape:
                raise ParameterError(f"{name} has shape {p[name].shape}, expected {shape}")
            if not np.isfinite(p[name]).all():
                raise ParameterError(f"{name} holds NaN or infinite values")
        grid = (12 // self.pool[0], 12 // self.pool[1]) if self.encoder == "aisfx" else None
        if self.encoder == "aisfx" and (features, n_time, n_freq) != (512, *grid):
            raise ParameterError(f"aisfx node maps of shape {self.node_shape_}, expected (512, {grid[0]}, {grid[1]})")
        if self.encoder == "log-mel" and features != LOG_MEL_CELL**2:
            raise ParameterError(f"log-mel nodes of {features} features, expected {LOG_MEL_CELL**2}")
        if not (np.isfinite(self.temperature_) and 0.01 <= self.temperature_ <= 100):
            raise ParameterError(f"temperature {self.temperature_!r} outside 0.01..100")
        if not (np.isfinite(self.mean_) and np.isfinite(self.scale_) and self.scale_ > 0):
            raise ParameterError("node standardisation is not finite and positive")
        config = self.patch_config_
        if config is not None and self.encoder == "log-mel" and (
                config["patch_frames"] // (LOG_MEL_CELL * self.pool[0]) != n_time
                or config["n_mels"] // (LOG_MEL_CELL * self.pool[1]) != n_freq):
            raise ParameterError("the patch configuration does not match the node maps")

    def score_files(self, paths, *, store=None, backend=None, progress: bool = False):
        """Class probabilities of audio files (logits averaged over each file's patches).

        See :func:`earmark.models.predict_files`; ``store`` and ``backend`` are unused.
        A multi-label tagger adds ``tags`` (classes with probability >= 0.5) to each
        prediction.

        Returns
        -------
        FileScores
        """
        from ..interpret.features import score_patch_files
        from ..models import FileScores

        _, P, ok, errors = score_patch_files(
            paths, self._config(), lambda patches, n: clip_proba(self, patches, n),
            len(self.classes_), progress=progress,
        )
        extra = None
        if self.multilabel_:
            extra = [{"tags": [_plain(c) for c in self.classes_[row >= 0.5]]} for row in P[ok]]
        return FileScores(P[ok], ok, errors, extra=extra)

    def _config(self):
        from ..interpret.features import PatchConfig

        check_is_fitted(self, "params_")
        if self.patch_config_ is None:
            raise EarmarkError(
                "this tagger was fitted on patches, not audio files: fit it with "
                "earmark.graph.fit_manifest to tag files"
            )
        return PatchConfig(**self.patch_config_)

    def save(self, path) -> Path:
        """Write the tagger to one model file (kind ``"graph-tagger"``)."""
        from ..models import save_graph_tagger

        check_is_fitted(self, "params_")
        return save_graph_tagger(self, path)


def fit_manifest(manifest, config=None, *, progress: bool = False, **params) -> GraphTagger:
    """Fit a :class:`GraphTagger` on every readable item of a single-label manifest.

    Parameters
    ----------
    manifest : Manifest
    config : PatchConfig, optional
        Default: the encoder's (:func:`earmark.interpret.encoders.patch_config`).
    **params
        Passed to :class:`GraphTagger`.

    Returns
    -------
    GraphTagger
        With ``patch_config_`` set (so it scores files) and ``failures_``.
    """
    from ..interpret.encoders import ENCODERS, check_encoder, patch_config
    from ..interpret.features import manifest_patches

    encoder = check_encoder(params.get("encoder", "aisfx"))
    config = config or patch_config(encoder)
    if config.spectrogram != ENCODERS[encoder]:
        raise ParameterError(f"the {encoder!r} encoder reads {ENCODERS[encoder]!r} patches, got "
                             f"spectrogram={config.spectrogram!r}")  # fmt: skip
    patches = manifest_patches(manifest, config, progress=progress)
    groups = manifest.groups[patches.item] if manifest.has_groups else patches.item
    tagger = GraphTagger(**params).fit(patches.X, manifest.y[patches.item], groups=groups)
    tagger.patch_config_ = config.to_dict()
    tagger.failures_ = patches.failures
    return tagger


def clip_logits(logits: np.ndarray, item: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean patch logits per item: ``(n_items, n_classes)`` (NaN rows without patches), ok."""
    counts = np.bincount(item, minlength=n_items)
    sums = np.zeros((n_items, logits.shape[1]))
    np.add.at(sums, item, logits)
    ok = counts > 0
    mean = np.full_like(sums, np.nan)
    mean[ok] = sums[ok] / counts[ok, None]
    return mean, ok


def clip_proba(tagger: GraphTagger, patches, n_items: int, *, maps=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-item probabilities from the mean of its patches' calibrated logits.

    Parameters
    ----------
    tagger : GraphTagger
    patches : PatchSet
    n_items : int
    maps : np.ndarray, optional
        Node maps of ``patches.X``, when already computed.

    Returns
    -------
    P : np.ndarray [shape=(n_items, n_classes)]
    ok : np.ndarray [shape=(n_items,), dtype=bool]
    """
    logits, ok = clip_logits(tagger.decision_function(patches.X, maps=maps), patches.item, n_items)
    return _probabilities(logits, tagger.multilabel_), ok


# ----------------------------------------------------------------- helpers
def _probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    return expit(logits) if multilabel else softmax(logits, axis=1)


def _targets(y, n: int):
    """``(targets, classes, multilabel)`` from labels, label sets or an indicator matrix."""
    if isinstance(y, np.ndarray) and y.ndim == 2:
        if y.shape[0] != n or not np.isin(y, (0, 1)).all():
            raise ParameterError(f"expected a 0/1 indicator matrix with {n} rows, got shape {y.shape}")
        return y.astype(np.float32), np.arange(y.shape[1]), True
    values = list(y)
    if len(values) != n:
        raise ParameterError(f"expected {n} labels, got {len(values)}")
    if values and all(isinstance(v, (list, tuple, set, frozenset)) for v in values):
        classes = np.asarray(sorted({c for v in values for c in v}))
        if len(classes) < 2:
            raise ParameterError(f"expected at least 2 classes, got {len(classes)}")
        targets = np.zeros((n, len(classes)), np.float32)
        for row, labels in enumerate(values):
            targets[row, np.searchsorted(classes, list(labels))] = 1.0
        return targets, classes, True
    classes, targets = np.unique(np.asarray(values), return_inverse=True)
    if len(classes) < 2:
        raise ParameterError(f"expected at least 2 classes, got {len(classes)}")
    return targets.astype(np.int64), classes, False


def _held_out(groups, targets, multilabel: bool, n: int, rng) -> np.ndarray | None:
    """A fifth of the groups held out for the temperature; None when too few to spare."""
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ParameterError(f"expected {n} groups, got shape {groups.shape}")
    names = rng.permutation(np.unique(groups))
    if len(names) < 5:
        return None
    held = np.isin(groups, names[: max(1, len(names) // 5)])
    seen = targets[~held].sum(axis=0) if multilabel else np.bincount(targets[~held], minlength=targets.max() + 1)
    if held.all() or (np.asarray(seen) == 0).any():  # a class would be missing from training
        return None
    return held


def _fit_temperature(logits: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """The temperature in 0.05..20 minimising held-out log-loss."""
    from scipy.optimize import minimize_scalar

    def loss(log_t):
        scaled = logits / np.exp(log_t)
        if multilabel:
            p = np.clip(expit(scaled), 1e-7, 1 - 1e-7)
            return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.mean(log_p[np.arange(len(targets)), targets]))

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def _probe(inputs: np.ndarray, targets: np.ndarray, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """The pooled path's weights and bias as a standardised logistic regression (C=1) on
    the pooled maps, the linear probe, folded into one linear map."""
    from sklearn.linear_model import LogisticRegression

    pooled = inputs.mean(axis=3).max(axis=2).astype(np.float64)
    mean, scale = pooled.mean(axis=0), pooled.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Z = (pooled - mean) / scale
    n_classes = targets.shape[1] if multilabel else int(targets.max()) + 1
    # A class without training items (a held-out part may lack one) is never the answer.
    weight, bias = np.zeros((n_classes, Z.shape[1])), np.full(n_classes, -10.0)
    if multilabel:
        for c in range(n_classes):
            column = targets[:, c]
            if column.min() == column.max():
                bias[c] = 10.0 if column[0] else -10.0
                continue
            model = LogisticRegression(C=1.0, max_iter=1000).fit(Z, column)
            weight[c], bias[c] = model.coef_[0], model.intercept_[0]
    else:
        present = np.unique(targets)
        model = LogisticRegression(C=1.0, max_iter=1000).fit(Z, targets)
        if len(present) == 2:
            weight[present[1]], bias[present[1]] = model.coef_[0], model.intercept_[0]
        else:
            weight[present], bias[present] = model.coef_, model.intercept_
    folded_weight = weight / scale[None, :]
    folded_bias = bias - folded_weight @ mean
    return folded_weight.astype(np.float32), folded_bias.astype(np.float32)


def _check_patches(X, encoder: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[0] == 0:
        raise ParameterError(f"expected patches of shape (n, frames, mels), got shape {X.shape}")
    if encoder == "aisfx" and X.shape[1:] != (100, 96):
        raise ParameterError(f"expected aisfx patches of shape (n, 100, 96), got {X.shape}")
    if encoder == "log-mel" and (X.shape[1] % LOG_MEL_CELL or X.shape[2] % LOG_MEL_CELL):
        raise ParameterError(f"expected log-mel patch sides that are multiples of {LOG_MEL_CELL}, got {X.shape[1:]}")
    if not np.isfinite(X).all():
        raise ParameterError("patches hold NaN or infinite values")
    return X


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _torch():
    from ..training import import_trainer

    return import_trainer(f"{__package__}._torch", "a graph tagger")
