"""A prototype network: a classifier that decides by likeness to real training segments.

Longer than ~500 lines: the estimator, its NumPy forward pass and the checks of its
learned state belong together; the torch training lives in ``_protonet_torch.py``.

After APNet (Zinemanas et al., "An interpretable deep learning model for automatic sound
classification", Electronics 2021). A small convolutional encoder maps a log-mel patch
(:mod:`earmark.interpret.features`) to a latent map ``Z`` of shape ``(channels, frames /
4, mels / 4)``. Each prototype ``P_j`` has the same shape; their distance is computed per
latent mel band, ``d_jf = mean_t sum_c w_c (Z_ctf - P_jctf)^2``, so the network compares
time-frequency structure, not a pooled vector; ``w_c`` weighs latent channels (what
:mod:`earmark.interpret.refine` prunes). Similarities ``exp(-d_jf)`` are summed over
bands with learned weights and a linear layer maps the prototype similarities to classes.

The encoder (:mod:`earmark.interpret.encoders`) is learned from scratch on decibel
log-mel patches (``encoder="log-mel"``, APNet's way), or starts from the frozen
convolutions of the pretrained aiSFX network (``encoder="aisfx"``: its 512 x 12 x 12
maps of a 2.35 s patch, then a learned 1x1 and 3x3 convolution, no pooling), which
with a few hundred clips is far more accurate (see ``benchmarks/protonet.py``).

Training (torch, :mod:`earmark.interpret._protonet_torch`) minimises cross-entropy plus
a decoder's reconstruction error plus two closeness terms: every prototype near some
training latent of its class, every training latent near some prototype of its class.
Halfway, each prototype is *pushed* onto the nearest latent of a training patch of its
class and from then on tied to that patch's latent as the encoder goes on learning, so
the network finishes training with the real segments it will show (a push at the end
alone costs much of what was learned). Then only the head is tuned, so every prototype
**is** a real training segment: ``prototype_segments_`` says
which file and span, ``prototype_patches_`` holds its spectrogram and
``prototype_audio_`` (when fitted from a manifest) its sound.

A fitted ``"log-mel"`` network predicts in NumPy; torch is needed to fit and refine
only (and for the aiSFX encoder's frozen part, which runs in torch).
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..exceptions import EarmarkError, ParameterError
from .encoders import ENCODERS, check_encoder, frozen_maps, patch_config
from .features import PatchConfig, manifest_patches, score_patch_files

__all__ = ["PrototypeNetwork", "PARAMETER_NAMES", "fit_manifest", "clip_proba"]

#: Every learned array, by name; ``decoder.*`` only serve training (reconstruction).
PARAMETER_NAMES = (
    "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    "decoder1.weight", "decoder1.bias", "decoder2.weight", "decoder2.bias",
    "prototypes", "channel_logits", "frequency_weights", "head.weight", "head.bias",
)  # fmt: skip

#: Arrays needed to classify (the decoder only serves training).
CLASSIFIER_PARAMETERS = (
    "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    "prototypes", "channel_logits", "frequency_weights", "head.weight", "head.bias",
)  # fmt: skip


class PrototypeNetwork(ClassifierMixin, BaseEstimator):
    """Classify log-mel patches by their similarity to learned, real prototypes.

    Parameters
    ----------
    encoder : {"log-mel", "aisfx"}
        Learn the encoder from decibel log-mel patches (64 x 64 by default), or start
        from aiSFX's frozen convolutions (patches of
        :meth:`~earmark.interpret.features.PatchConfig.aisfx`, 100 x 96).
    prototypes_per_class : int
        Prototypes set aside for each class at the start.
    channels : tuple of int
        Channels of the encoder's two learned convolutions; the second is the latent
        depth.
    epochs : int
        Passes over the patches while training everything (learning rate warmed up,
        then cosine-decayed); the first half with free prototypes, the second with each prototype
        tied to the latent of the training patch it was pushed onto.
    head_epochs : int
        Passes after the push, tuning only channel weights, band weights and head.
    batch_size : int
    learning_rate : float
        Peak rate of Adam; the head is tuned at a fifth of it.
    reconstruction_weight, prototype_weight, sample_weight : float
        Weights of the decoder loss (None: 1 for ``"log-mel"``, where it keeps a
        from-scratch latent informative; 0 for ``"aisfx"``, whose frozen maps already
        are, and where it cost 4 points on Philharmonia), of "each prototype near a patch of its class"
        (free-prototype half only) and of "each patch near a prototype of its class"
        beside the cross-entropy.
    random_state : int, RandomState or None

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    params_ : dict of np.ndarray
        Every learned array (see :data:`PARAMETER_NAMES`).
    mean_, scale_ : float
        Standardisation of the log-mel input (dB).
    prototype_class_ : np.ndarray [shape=(n_prototypes,), dtype=int64]
        Class (index into ``classes_``) each prototype was pushed within.
    prototype_patches_ : np.ndarray [shape=(n_prototypes, frames, mels)]
        The training patch each prototype equals (dB).
    prototype_segments_ : list of dict
        Where each prototype comes from: ``row`` (in the training ``X``) and, when
        ``segments`` were given, ``path``, ``start_s``, ``end_s``.
    prototype_audio_ : np.ndarray [shape=(n_prototypes, n_samples)] or None
        Sound of each prototype's segment (set by :func:`fit_manifest`).
    patch_config_ : dict or None
        The :class:`~earmark.interpret.features.PatchConfig` of the training patches.
    loss_curve_ : list of float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 16, 16)).astype(np.float32)
    >>> X[20:, :, :8] += 3  # class "b" is loud in the low bands
    >>> y = ["a"] * 20 + ["b"] * 20
    >>> net = PrototypeNetwork(channels=(4, 4), epochs=5, head_epochs=5).fit(X, y)
    >>> net.predict(X[:2]).shape, net.params_["prototypes"].shape
    ((2,), (6, 4, 4, 4))
    """

    def __init__(
        self,
        *,
        encoder: str = "log-mel",
        prototypes_per_class: int = 3,
        channels: tuple[int, int] = (16, 16),
        epochs: int = 40,
        head_epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 5e-3,
        reconstruction_weight: float | None = None,
        prototype_weight: float = 0.1,
        sample_weight: float = 0.1,
        random_state=0,
    ):
        self.encoder = encoder
        self.prototypes_per_class = prototypes_per_class
        self.channels = channels
        self.epochs = epochs
        self.head_epochs = head_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reconstruction_weight = reconstruction_weight
        self.prototype_weight = prototype_weight
        self.sample_weight = sample_weight
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, *, segments=None):
        """Train on labelled patches, push the prototypes onto real patches.

        Parameters
        ----------
        X : np.ndarray [shape=(n, frames, mels)]
            Log-mel patches: in dB with ``frames`` and ``mels`` multiples of 4 for the
            ``"log-mel"`` encoder; aiSFX's (n, 100, 96) blocks for ``"aisfx"``.
        y : array-like [shape=(n,)]
            Label of each patch (at least 2 classes).
        segments : mapping of array-like [shape=(n,)], optional
            Columns ``path``, ``start_s``, ``end_s`` (a dict or DataFrame): where each
            patch comes from, recorded for the prototypes.

        Returns
        -------
        self
        """
        self._check_params()
        X = _check_patches(X, encoder=self.encoder)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ParameterError(f"expected {X.shape[0]} labels, got shape {y.shape}")
        classes, targets = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ParameterError(f"expected at least 2 classes, got {len(classes)}")
        torch_side = _torch()
        self.classes_ = classes
        maps = frozen_maps(self.encoder, X)
        self.mean_ = float(maps.mean())
        self.scale_ = float(maps.std()) or 1.0
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        prototype_class = np.repeat(np.arange(len(classes)), int(self.prototypes_per_class))
        pooled = 4 if self.encoder == "log-mel" else 1
        params = torch_side.initial_params(
            in_channels=maps.shape[1], channels=tuple(int(c) for c in self.channels),
            prototype_class=prototype_class, n_classes=len(classes),
            latent_shape=(maps.shape[2] // pooled, maps.shape[3] // pooled), rng=rng,
            encoder=self.encoder,
        )  # fmt: skip
        self._train(params, X, targets, segments, init_prototypes=True, epochs=self.epochs,
                    seed=rng, maps=maps)  # fmt: skip
        self.n_features_in_ = int(X.shape[1] * X.shape[2])
        self.prototype_audio_ = None
        self.patch_config_ = None
        self.refinement_ = None
        return self

    def _train(self, params, X, targets, segments, *, init_prototypes, epochs, seed,
               maps=None) -> None:
        """Run the torch training from ``params`` and keep its results (fit, refine).

        ``maps``: the frozen encoder's output for ``X``, when already computed."""
        from ..training import single_thread

        torch_side = _torch()
        inputs = self._inputs(X, maps)
        # Small convolutions on a shared machine: one thread wastes least.
        with single_thread():
            params, push_index, losses = torch_side.train(
                params, inputs, targets, encoder=self.encoder,
                init_prototypes=init_prototypes, epochs=int(epochs),
                head_epochs=int(self.head_epochs), batch_size=int(self.batch_size),
                learning_rate=float(self.learning_rate),
                reconstruction_weight=self._reconstruction_weight(),
                prototype_weight=float(self.prototype_weight),
                sample_weight=float(self.sample_weight),
                seed=int(seed.integers(2**31 - 1)),
            )  # fmt: skip
        self.params_ = params
        self.prototype_class_ = params["head.weight"].argmax(axis=0).astype(np.int64)
        self.prototype_patches_ = X[push_index].copy()
        self.prototype_segments_ = [{"row": int(row)} for row in push_index]
        if segments is not None:
            for column in ("path", "start_s", "end_s"):
                values = np.asarray(segments[column])
                if values.shape != (len(X),):
                    raise ParameterError(
                        f"expected segments[{column!r}] of shape ({len(X)},), got {values.shape}"
                    )
                for record, value in zip(self.prototype_segments_, values[push_index]):
                    record[column] = str(value) if column == "path" else float(value)
        self.loss_curve_ = losses

    def _reconstruction_weight(self) -> float:
        if self.reconstruction_weight is not None:
            return float(self.reconstruction_weight)
        return 1.0 if self.encoder == "log-mel" else 0.0

    def _check_params(self) -> None:
        check_encoder(self.encoder)
        for name in ("prototypes_per_class", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"expected {name} to be an integer >= 1, got {value!r}")
        if not isinstance(self.head_epochs, Integral) or self.head_epochs < 0:
            raise ParameterError(f"expected head_epochs >= 0, got {self.head_epochs!r}")
        channels = tuple(self.channels) if isinstance(self.channels, (tuple, list)) else ()
        if len(channels) != 2 or not all(isinstance(c, Integral) and c >= 1 for c in channels):
            raise ParameterError(f"expected channels as two integers >= 1, got {self.channels!r}")
        for name in ("learning_rate",):
            if not (isinstance(getattr(self, name), Real) and getattr(self, name) > 0):
                raise ParameterError(f"expected {name} > 0, got {getattr(self, name)!r}")
        for name in ("reconstruction_weight", "prototype_weight", "sample_weight"):
            if name == "reconstruction_weight" and self.reconstruction_weight is None:
                continue
            if not (isinstance(getattr(self, name), Real) and getattr(self, name) >= 0):
                raise ParameterError(f"expected {name} >= 0, got {getattr(self, name)!r}")

    # --------------------------------------------------------------- prediction
    def _inputs(self, X: np.ndarray, maps: np.ndarray | None = None) -> np.ndarray:
        """Standardised input of the learned layers, ``(n, channels, height, width)``."""
        maps = frozen_maps(self.encoder, X) if maps is None else maps
        return ((maps - self.mean_) / self.scale_).astype(np.float32)

    def encode(self, X) -> np.ndarray:
        """Latent maps of patches.

        Parameters
        ----------
        X : np.ndarray [shape=(n, frames, mels)]

        Returns
        -------
        Z : np.ndarray [shape=(n, channels, height, width), dtype=float32]
            ``(frames / 4, mels / 4)`` for the ``"log-mel"`` encoder, (12, 12) for
            ``"aisfx"``.
        """
        check_is_fitted(self, "params_")
        X = _check_patches(X, self.prototype_patches_.shape[1:])
        p = self.params_
        maps = frozen_maps(self.encoder, X)
        out = []
        for start in range(0, len(X), 128):
            x = self._inputs(X[start : start + 128], maps[start : start + 128])
            h = np.maximum(_conv(x, p["conv1.weight"], p["conv1.bias"]), 0)
            if self.encoder == "aisfx":
                out.append(np.tanh(_conv(h, p["conv2.weight"], p["conv2.bias"])))
                continue
            h = _max_pool(h)
            out.append(np.tanh(_max_pool(_conv(h, p["conv2.weight"], p["conv2.bias"]))))
        return np.concatenate(out).astype(np.float32)

    def distances(self, X) -> np.ndarray:
        """Distance of each patch to each prototype per latent mel band.

        Parameters
        ----------
        X : np.ndarray [shape=(n, frames, mels)]

        Returns
        -------
        D : np.ndarray [shape=(n, n_prototypes, mels / 4)]
        """
        return _distances(self.encode(X), self.params_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of patches.

        Parameters
        ----------
        X : np.ndarray [shape=(n, frames, mels)]

        Returns
        -------
        P : np.ndarray [shape=(n, n_classes)]
        """
        logits = _head(self.distances(X), self.params_)
        return softmax(logits, axis=1)

    def predict(self, X) -> np.ndarray:
        """Labels of patches, [shape=(n,)]."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def nearest_prototype(self, X) -> np.ndarray:
        """Index of the nearest prototype of each patch, [shape=(n,), dtype=int64]."""
        return self.distances(X).mean(axis=2).argmin(axis=1)

    @property
    def n_prototypes_(self) -> int:
        check_is_fitted(self, "params_")
        return int(self.params_["prototypes"].shape[0])

    @property
    def n_parameters_(self) -> int:
        """Learned numbers needed to classify (the decoder, a training aid, excluded)."""
        check_is_fitted(self, "params_")
        return int(sum(self.params_[name].size for name in CLASSIFIER_PARAMETERS))

    def channel_weights(self) -> np.ndarray:
        """Weight ``w_c`` of each latent channel in the distance (mean 1), [shape=(channels,)]."""
        check_is_fitted(self, "params_")
        return _channel_weights(self.params_["channel_logits"])

    # ---------------------------------------------------------- files and audio
    #: The model kind (:data:`earmark.models.KINDS`).
    kind = "prototype-network"
    #: A network reads its own patches, not a backend's embeddings.
    backend_identity = None

    @property
    def training(self) -> dict[str, Any]:
        """Training summary: parameters learned, prototypes, final loss, refinement."""
        check_is_fitted(self, "params_")
        return {
            "n_parameters": self.n_parameters_,
            "n_prototypes": self.n_prototypes_,
            "final_loss": float(self.loss_curve_[-1]) if self.loss_curve_ else None,
            "refinement": getattr(self, "refinement_", None),
        }

    def check_state(self) -> None:
        """Check that the learned arrays fit together (a file's are read from a stranger).

        Raises
        ------
        ParameterError
            Naming the array or value that does not fit.
        """
        check_is_fitted(self, "params_")
        p = self.params_
        prototypes = p["prototypes"]
        if prototypes.ndim != 4:
            raise ParameterError(f"prototypes of shape {prototypes.shape}; expected 4 axes")
        n_prototypes, channels, height, width = prototypes.shape
        n_classes = len(self.classes_)
        expected = {
            "conv1.bias": (p["conv1.weight"].shape[0],),
            "conv2.weight": (channels, p["conv1.weight"].shape[0], *p["conv2.weight"].shape[2:]),
            "conv2.bias": (channels,),
            "channel_logits": (channels,),
            "frequency_weights": (n_prototypes, width),
            "head.weight": (n_classes, n_prototypes),
            "head.bias": (n_classes,),
        }
        for name, shape in expected.items():
            if p[name].shape != tuple(shape):
                raise ParameterError(f"{name} has shape {p[name].shape}, expected {tuple(shape)}")
        in_channels = 1 if self.encoder == "log-mel" else 512
        if p["conv1.weight"].ndim != 4 or p["conv1.weight"].shape[1] != in_channels \
                or p["conv1.weight"].shape[2:] not in ((1, 1), (3, 3)) \
                or p["conv2.weight"].shape[2:] not in ((1, 1), (3, 3)):
            raise ParameterError(f"conv1.weight has shape {p['conv1.weight'].shape}")
        patches = self.prototype_patches_
        if patches.ndim != 3 or patches.shape[0] != n_prototypes:
            raise ParameterError(f"prototype_patches has shape {patches.shape}")
        pooled = 4 if self.encoder == "log-mel" else None
        if pooled and (patches.shape[1] // pooled, patches.shape[2] // pooled) != (height, width):
            raise ParameterError(f"prototypes of {height}x{width} do not fit patches {patches.shape[1:]}")
        if self.encoder == "aisfx" and patches.shape[1:] != (100, 96):
            raise ParameterError(f"aisfx prototype patches of shape {patches.shape[1:]}")
        if self.patch_config_ is not None and \
                (self.patch_config_["patch_frames"], self.patch_config_["n_mels"]) != patches.shape[1:]:
            raise ParameterError("the patch configuration does not match the prototype patches")
        classes = self.prototype_class_
        if classes.shape != (n_prototypes,) or (classes < 0).any() or (classes >= n_classes).any():
            raise ParameterError(f"prototype classes out of range 0..{n_classes - 1}")
        if len(self.prototype_segments_) != n_prototypes:
            raise ParameterError("one prototype segment per prototype expected")
        audio = self.prototype_audio_
        if audio is not None and (audio.ndim != 2 or audio.shape[0] != n_prototypes):
            raise ParameterError(f"prototype_audio has shape {audio.shape}")

    def score_files(self, paths, *, store=None, backend=None, progress: bool = False):
        """Class probabilities of audio files (mean log-probability over each file's patches).

        See :func:`earmark.models.predict_files`; ``store`` and ``backend`` are unused (the
        network reads its own patches). Each prediction gains ``nearest_prototype`` (of the
        file's most typical patch).

        Returns
        -------
        FileScores
        """
        from ..models import FileScores

        patches, P, ok, errors = score_patch_files(
            paths, self._config(), lambda patches, n: clip_proba(self, patches, n),
            len(self.classes_), progress=progress,
        )
        extra = []
        for i in np.flatnonzero(ok):
            mine = patches.X[patches.item == i]
            extra.append({"nearest_prototype": int(np.bincount(self.nearest_prototype(mine)).argmax())})
        return FileScores(P[ok], ok, errors, extra=extra)

    def _config(self) -> PatchConfig:
        check_is_fitted(self, "params_")
        if self.patch_config_ is None:
            raise EarmarkError(
                "this network was fitted on patches, not audio files: fit it with "
                "earmark.interpret.protonet.fit_manifest to classify files"
            )
        return PatchConfig(**self.patch_config_)

    def save(self, path) -> Path:
        """Write the network to one model file (kind ``"prototype-network"``)."""
        from ..models import save_network

        check_is_fitted(self, "params_")
        return save_network(self, path)

    @classmethod
    def load(cls, path) -> "PrototypeNetwork":
        """Read a network file (see :func:`earmark.models.load_model`)."""
        from ..exceptions import ModelFileError
        from ..models import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path}: holds a {model.kind!r} model, not a prototype network")
        return model


def fit_manifest(manifest, config: PatchConfig | None = None, *, progress: bool = False,
                 **params) -> PrototypeNetwork:
    """Fit a :class:`PrototypeNetwork` on every readable item of a manifest.

    Each item's patches carry its label; the prototypes' sounds are cut from their files
    so the network can show them without the data (``prototype_audio_``).

    Parameters
    ----------
    manifest : Manifest
        Single-label items.
    config : PatchConfig, optional
        Default: the encoder's (:func:`earmark.interpret.encoders.patch_config`).
    progress : bool
    **params
        Passed to :class:`PrototypeNetwork`.

    Returns
    -------
    PrototypeNetwork
        With ``patch_config_`` set (so :meth:`~PrototypeNetwork.predict_files` works)
        and ``failures_``: ``(path, reason)`` of the items skipped.
    """
    encoder = check_encoder(params.get("encoder", "log-mel"))
    config = config or patch_config(encoder)
    if config.spectrogram != ENCODERS[encoder]:
        raise ParameterError(
            f"the {encoder!r} encoder reads {ENCODERS[encoder]!r} patches, got a PatchConfig "
            f"with spectrogram={config.spectrogram!r}"
        )
    patches = manifest_patches(manifest, config, progress=progress)
    paths = manifest.paths[patches.item]
    network = PrototypeNetwork(**params).fit(
        patches.X, manifest.y[patches.item],
        segments={"path": paths, "start_s": patches.start_s, "end_s": patches.end_s},
    )
    attach_audio(network, config)
    network.failures_ = patches.failures
    return network


def attach_audio(network: PrototypeNetwork, config: PatchConfig) -> None:
    """Cut each prototype's sound from its file (silence where it cannot be read)."""
    from ..audio import load

    audio = np.zeros((network.n_prototypes_, config.patch_samples), dtype=np.float32)
    for j, segment in enumerate(network.prototype_segments_):
        try:
            y, _ = load(segment["path"], sr=config.sr, start_s=segment["start_s"],
                        end_s=segment["end_s"])  # fmt: skip
        except (EarmarkError, KeyError):
            continue
        audio[j, : min(len(y), config.patch_samples)] = y[: config.patch_samples]
    network.prototype_audio_ = audio
    network.patch_config_ = config.to_dict()


def clip_proba(network: PrototypeNetwork, patches, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item probabilities: the softmax of the mean patch log-probability.

    Parameters
    ----------
    network : PrototypeNetwork
    patches : PatchSet
    n_items : int

    Returns
    -------
    P : np.ndarray [shape=(n_items, n_classes)]
        Rows of items without patches are NaN.
    ok : np.ndarray [shape=(n_items,), dtype=bool]
    """
    log_p = np.log(np.maximum(network.predict_proba(patches.X), 1e-12))
    counts = np.bincount(patches.item, minlength=n_items)
    sums = np.zeros((n_items, log_p.shape[1]))
    np.add.at(sums, patches.item, log_p)
    ok = counts > 0
    mean = np.full_like(sums, np.nan)
    mean[ok] = sums[ok] / counts[ok, None]
    return softmax(mean, axis=1), ok


# --------------------------------------------------------------- numpy forward
def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 convolution with zero padding 1 (or 1x1), as torch's conv2d: (n, in, h, w) ->
    (n, out, h, w)."""
    if weight.shape[2:] == (1, 1):
        return np.einsum("nchw,oc->nohw", x, weight[:, :, 0, 0], optimize=True) + bias[None, :, None, None]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    out = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3]))  # (n, h, w, out)
    return out.transpose(0, 3, 1, 2) + bias[None, :, None, None]


def _max_pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x[:, :, : h - h % 2, : w - w % 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _channel_weights(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return (len(logits) * e / e.sum()).astype(np.float32)


def _distances(Z: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    w = _channel_weights(params["channel_logits"])
    P = params["prototypes"]
    zz = np.einsum("nctf,c->nf", Z * Z, w)
    pp = np.einsum("jctf,c->jf", P * P, w)
    zp = np.einsum("nctf,jctf,c->njf", Z, P, w, optimize=True)
    return np.maximum(zz[:, None] + pp[None] - 2 * zp, 0.0) / Z.shape[2]


def _head(D: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    similarity = (np.exp(-D) * params["frequency_weights"][None]).sum(axis=2)
    return similarity @ params["head.weight"].T + params["head.bias"]


def _check_patches(X, shape: tuple | None = None, *, encoder: str = "log-mel") -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[0] == 0:
        raise ParameterError(f"expected patches of shape (n, frames, mels), got shape {X.shape}")
    if shape is None and encoder == "aisfx":
        aisfx = PatchConfig.aisfx()
        shape = (aisfx.patch_frames, aisfx.n_mels)
    if shape is None and (X.shape[1] % 4 or X.shape[2] % 4 or X.shape[1] < 4 or X.shape[2] < 4):
        raise ParameterError(
            f"expected frames and mels to be multiples of 4 (two 2x2 poolings), got {X.shape[1:]}"
        )
    if shape is not None and X.shape[1:] != tuple(shape):
        raise ParameterError(f"expected patches of shape (n, {shape[0]}, {shape[1]}), got {X.shape}")
    if not np.isfinite(X).all():
        raise ParameterError("patches hold NaN or infinite values")
    return X


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _torch():
    from ..training import import_trainer

    return import_trainer(f"{__package__}._protonet_torch", "a prototype network")
