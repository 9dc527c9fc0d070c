"""musicnn: music-tagging CNNs (Pons & Serra, ISMIR 2019 LBD) as an embedding backend.

The weights are the TensorFlow 1 checkpoints shipped inside the ``musicnn`` wheel
(ISC licence): ``MTT_musicnn`` and ``MTT_vgg`` (trained on MagnaTagATune),
``MSD_musicnn`` and ``MSD_vgg`` (Million Song Dataset; upstream's extractor refuses
``MSD_vgg`` as "still training", but its checkpoint restores and has the weakest
features here). Each model reads a 3 s patch of log-mel spectrogram (16 kHz, 96 mel
bands, n_fft 512, hop 256: 187 frames) and predicts 50 tags; its intermediate layers
are the embedding.

One frame of earmark is one patch: ``window_samples = 512 + 186 * 256 = 48128``
samples give exactly 187 mel frames with ``center=False``. The default hop, 187 * 256
= 47872 samples (2.992 s), is the patch step of musicnn's own extractor, so consecutive
frames tile the same mel grid. The extractor zero-pads 256 samples before the first
frame (librosa's ``center=True``); the backend declares them (``lead_samples = 256``), so
our frame ``i`` covers samples ``[i * hop - 256, i * hop + 47872)`` and is the
extractor's patch ``i`` (see ``tests/backends/test_musicnn.py``); timestamps are clipped
to the audio. (Before ``code_version`` 2 the frames started on sample 0, 16 ms later.)

Layers (``layer``):

- musicnn models: ``"max_pool"`` and ``"mean_pool"`` (753: front-end and mid-end
  feature maps pooled over the patch), ``"penultimate"`` (200: the dense layer before
  the tag classifier);
- vgg models: ``"pool4"`` (8448: 11 x 6 x 128, flattened time-major) and ``"pool5"``
  (256: last pooling block, 2 x 1 x 128).

The defaults, ``max_pool`` and ``pool4``, were the best layers of their models for
telling the 12 instruments of philharmonia-mini apart with logistic regression
(``penultimate`` and ``pool5`` lost 10 to 20 points there).

The graph runs in ``tf.compat.v1`` graph mode (built once in a private ``tf.Graph``,
restored once, one session kept), through the legacy Keras layers of ``tf-keras``;
TensorFlow is imported only when the backend first embeds.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..exceptions import BackendError, ParameterError
from .base import Backend, Licence

__all__ = ["MusicnnBackend", "MODELS", "LAYERS", "MTT_TAGS", "MSD_TAGS"]

# Tag lists copied from musicnn/configuration.py (ISC, Jordi Pons), so that
# ``class_names`` is known without importing musicnn.
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
    "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
    "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
    "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats",
    "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance",
    "00s", "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s",
    "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
    "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

#: Checkpoints in the musicnn 0.1.0 wheel: model name -> (architecture, tags).
MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "MTT_musicnn": ("musicnn", MTT_TAGS),
    "MSD_musicnn": ("musicnn", MSD_TAGS),
    "MTT_vgg": ("vgg", MTT_TAGS),
    "MSD_vgg": ("vgg", MSD_TAGS),
}
#: Embedding layers per architecture, with their dimension; the first is the default.
LAYERS: dict[str, dict[str, int]] = {
    "musicnn": {"max_pool": 753, "mean_pool": 753, "penultimate": 200},
    "vgg": {"pool4": 11 * 6 * 128, "pool5": 256},
}

_SAMPLE_RATE = 16000
_N_FFT = 512
_MEL_HOP = 256
_N_MELS = 96
_PATCH_FRAMES = 187  # what the models were trained on: 3 s at 16 kHz / 256
# Order of the tensors musicnn.models.define_model returns after the logits.
_OUTPUTS = {
    "musicnn": (
        "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"
    ),
    "vgg": ("pool1", "pool2", "pool3", "pool4", "pool5"),
}  # fmt: skip


def log_mel_patches(windows: np.ndarray, mel_basis: np.ndarray) -> np.ndarray:
    """musicnn's input representation, computed in float32.

    Upstream casts the mel power to float16 before ``log10(10000 * mel + 1)``, so any
    mel bin above 6.55 (a loud note) overflows to inf and the network returns NaN; the
    same formula in float32 matches it elsewhere to float16 rounding.

    Parameters
    ----------
    windows : np.ndarray [shape=(batch, 512 + 256 * (n_frames - 1)), dtype=float32]
    mel_basis : np.ndarray [shape=(96, 257)]

    Returns
    -------
    patches : np.ndarray [shape=(batch, n_frames, 96), dtype=float32]
    """
    import librosa

    spectrum = librosa.stft(windows, n_fft=_N_FFT, hop_length=_MEL_HOP, center=False)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # (batch, 257, t)
    mel = np.matmul(mel_basis, power)  # (batch, 96, t)
    return np.log10(np.float32(10000) * mel + np.float32(1)).transpose(0, 2, 1)


class MusicnnBackend(Backend):
    """musicnn / vgg music-tagging CNNs; one frame per 3 s patch.

    Parameters
    ----------
    model : {"MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg"}
        Checkpoint from the ``musicnn`` wheel. MTT models tag MagnaTagATune's 50 tags
        (instruments, genres, moods), MSD models the Million Song Dataset's 50.
    layer : str, optional
        Embedding layer (see :data:`LAYERS`): ``"max_pool"`` (default), ``"mean_pool"``
        or ``"penultimate"`` for musicnn models; ``"pool4"`` (default) or ``"pool5"``
        for vgg models.
    hop_s : float, optional
        Hop between frames in seconds; default one patch (2.992 s), as the upstream
        extractor.
    n_threads : int
        TensorFlow intra-op threads; does not change the output.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("musicnn", model="MTT_musicnn", layer="penultimate")
    >>> backend.dimension, backend.window_samples, len(backend.class_names)
    (200, 48128, 50)
    """

    name = "musicnn"
    description = "musicnn music-tagging CNNs (MTT/MSD), 3 s patches at 16 kHz, 50 tags"
    licence = Licence(
        "ISC",
        commercial_use=True,
        attribution=(
            "Jordi Pons and Xavier Serra, musicnn: pre-trained convolutional neural "
            "networks for music audio tagging, ISMIR 2019 late-breaking demo"
        ),
        note="weights from the musicnn 0.1.0 wheel",
    )
    requires = ("musicnn", "tensorflow", "tf_keras")
    extra = "musicnn"
    install_hint = (
        "pip install 'earmark[musicnn]' && "
        "pip install --no-deps tf-keras==2.21.0 musicnn==0.1.0"
    )
    code_version = "2"  # 2: lead_samples, the extractor's frame grid

    sample_rate = _SAMPLE_RATE
    window_samples = _N_FFT + (_PATCH_FRAMES - 1) * _MEL_HOP  # 48128: 187 frames
    lead_samples = _N_FFT // 2  # 256: the zeros of the extractor's center=True STFT
    batch_size = 16

    def __init__(
        self,
        *,
        model: str = "MTT_musicnn",
        layer: str | None = None,
        hop_s: float | None = None,
        n_threads: int = 2,
    ):
        if model not in MODELS:
            raise ParameterError(
                f"unknown musicnn model {model!r}; expected one of: {', '.join(MODELS)}"
            )
        architecture, tags = MODELS[model]
        layers = LAYERS[architecture]
        if layer is None:
            layer = next(iter(layers))
        if layer not in layers:
            raise ParameterError(
                f"model {model!r} has no layer {layer!r}; expected one of: {', '.join(layers)}"
            )
        if hop_s is None:
            hop_samples = _PATCH_FRAMES * _MEL_HOP
        else:
            hop_samples = int(round(float(hop_s) * self.sample_rate))
            if hop_samples < 1:
                raise ParameterError(f"hop_s must be positive, got {hop_s!r}")
        if int(n_threads) < 1:
            raise ParameterError(f"n_threads must be at least 1, got {n_threads!r}")
        super().__init__(model=model, layer=layer, hop_s=hop_s)
        self.model = model
        self.layer = layer
        self.architecture = architecture
        self.class_names = list(tags)
        self.dimension = layers[layer]
        self.hop_samples = hop_samples
        self.n_threads = int(n_threads)

    # ----------------------------------------------------------------- weights
    def _checkpoint_prefix(self) -> Path:
        self.require()
        # find_spec locates the package without importing it (its extractor module
        # switches TensorFlow to graph mode for the whole process).
        spec = importlib.util.find_spec("musicnn")
        return Path(next(iter(spec.submodule_search_locations))) / self.model

    def weights_paths(self) -> Sequence[Path]:
        prefix = self._checkpoint_prefix()
        # The checkpoint's files are named by an empty prefix inside the model folder.
        return [prefix / ".data-00000-of-00001", prefix / ".index"]

    # ------------------------------------------------------------------ model
    def _load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # tf.compat.v1.layers exists only when TensorFlow routes Keras to tf-keras.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import librosa
        import tensorflow as tf
        from musicnn import models

        prefix = self._checkpoint_prefix()
        missing = [str(p) for p in self.weights_paths() if not p.is_file()]
        if missing:
            raise BackendError(f"musicnn checkpoint files missing: {', '.join(missing)}")

        graph = tf.Graph()
        with graph.as_default(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one deprecation warning per legacy layer
            with tf.name_scope("model"):
                x = tf.compat.v1.placeholder(tf.float32, [None, _PATCH_FRAMES, _N_MELS])
                try:
                    logits, *features = models.define_model(x, False, self.model, 50)
                except AttributeError as error:
                    raise BackendError(
                        "musicnn needs TensorFlow's legacy Keras layers: set "
                        "TF_USE_LEGACY_KERAS=1 before anything imports TensorFlow "
                        f"(got: {error})"
                    ) from error
                probabilities = tf.nn.sigmoid(logits)
            embedding = features[_OUTPUTS[self.architecture].index(self.layer)]
            embedding = tf.reshape(embedding, [-1, self.dimension])
            config = tf.compat.v1.ConfigProto(
                intra_op_parallelism_threads=self.n_threads,
                inter_op_parallelism_threads=min(self.n_threads, 2),
            )
            session = tf.compat.v1.Session(graph=graph, config=config)
            try:
                tf.compat.v1.train.Saver().restore(session, str(prefix) + os.sep)
            except Exception as error:  # TF raises its own error types here
                session.close()
                raise BackendError(
                    f"cannot restore musicnn checkpoint {prefix}: {error}"
                ) from error
        graph.finalize()
        self._session = session
        self._input = x
        self._fetches = (embedding, probabilities)
        self._mel_basis = librosa.filters.mel(
            sr=self.sample_rate, n_fft=_N_FFT, n_mels=_N_MELS
        ).astype(np.float32)

    def _run_model(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        patches = log_mel_patches(windows, self._mel_basis)
        X, scores = self._session.run(self._fetches, feed_dict={self._input: patches})
        return X, scores

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return self._run_model(windows)[0]

    def _embed_and_score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run_model(windows)  # one run of the network gives both

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Tag probabilities (sigmoid of the model's logits), one column per tag."""
        return self._run_model(windows)[1]

    def close(self) -> None:
        """Release the TensorFlow session; the next embedding loads it again."""
        if self._loaded:
            self._session.close()
            self._session = None
            self._loaded = False
