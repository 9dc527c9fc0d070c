"""Removing time-frequency regions of a clip, and scoring what is left with a model.

Explanations in :mod:`earmark.interpret` work on the waveform, so they apply to any
earmark model whatever its backend (frozen embeddings included): the clip is cut into a
grid of regions (time segments x mel-spaced frequency bands), regions are removed in the
short-time Fourier transform, the result is turned back into a waveform, embedded by the
model's own backend and scored by the model. A prototype network
(:mod:`earmark.interpret.protonet`) is scored the same way, its own log-mel patches
standing for the backend (:class:`PrototypeScorer`).

The bands are contiguous ranges of STFT bins between mel-spaced edges (the frequencies
the mel filterbank is centred on), so every bin belongs to exactly one band and every
region has exact edges in seconds and hertz; bins above the clip's own Nyquist frequency
(an 8 kHz file played through a 22.05 kHz backend) hold nothing and belong to no band.

Removing a region lowers each of its bins to the clip's background level
(``baseline="floor"``, the default), keeping the phase; a bin already below it is left
as it is. The background level of a frequency is estimated from the quiet tenth of the
clip (the 10th percentile of the bin's magnitude over time, so that events lasting most
of the clip do not raise it), scaled to the RMS of noise with that percentile
(:data:`FLOOR_SCALE`), so that removing a region of plain background changes little.

Zeroing (``baseline="zero"``) cuts holes of digital silence into a recording that has
background noise everywhere else, which is a sound no model was trained on: the score
then measures the model's reaction to an artefact as much as to the loss of evidence
(the unreliability of perturbation explanations that Mishra, Benetos, Sturm and Dixon
describe). Lowered to the floor, a removed region sounds like the clip's own
background; on a clip with a silent background the two baselines coincide. The price: a sound that lasts the whole clip at a steady
level (a hum, a held note filling the clip) is its own floor and cannot be removed;
explain such clips with ``baseline="zero"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import EarmarkError, ParameterError

__all__ = [
    "BASELINES", "RegionGrid", "MaskedClip", "ClassScorer", "PrototypeScorer", "PatchBackend",
    "class_scorer", "model_backend", "stft_settings",
]

#: What a removed region is lowered to (see the module docstring).
BASELINES = ("floor", "zero")
#: Percentile of each bin's magnitude over time that the background level is read from.
FLOOR_PERCENTILE = 10.0
#: From that percentile to the background's RMS magnitude: in a bin holding only noise
#: the magnitude is Rayleigh distributed, whose 10th percentile is sigma * sqrt(-2 ln 0.9)
#: and whose RMS is sigma * sqrt(2). Clamping at the percentile itself would strip the
#: background too (about -10 dB, and flat), making even "removed noise" a new sound.
FLOOR_SCALE = float(np.sqrt(2.0) / np.sqrt(-2.0 * np.log(0.9)))
#: STFT values (complex) rendered at once; bounds memory whatever the clip's length.
_CHUNK_VALUES = 1 << 24


def stft_settings(sr: int) -> tuple[int, int]:
    """``(n_fft, hop_length)`` for a rate: about 46 ms windows, 75 % overlap.

    A power of two near 46 ms gives about 20 Hz bins at 22.05 kHz and 23 Hz at 48 kHz;
    with a Hann window and a quarter-window hop, an untouched STFT inverts back to the
    clip exactly.
    """
    n_fft = int(2 ** round(np.log2(max(sr, 1000) * 0.046)))
    return n_fft, n_fft // 4


@dataclass(frozen=True)
class RegionGrid:
    """Time segments x frequency bands that cover a clip.

    Attributes
    ----------
    time_edges_s : np.ndarray [shape=(n_time + 1,)]
        Segment edges in seconds, from 0 to the clip's duration.
    band_edges_hz : np.ndarray [shape=(n_bands + 1,)]
        Band edges in hertz, mel-spaced from 0 to the clip's Nyquist frequency.
    """

    time_edges_s: np.ndarray
    band_edges_hz: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.time_edges_s) - 1, len(self.band_edges_hz) - 1

    @property
    def n_regions(self) -> int:
        return self.shape[0] * self.shape[1]

    @classmethod
    def for_clip(
        cls, duration_s: float, nyquist_hz: float, *, n_time: int = 8, n_bands: int = 8
    ) -> "RegionGrid":
        """Equal segments in time and mel-spaced bands (as the mel filterbank places them).

        Parameters
        ----------
        duration_s : float
        nyquist_hz : float
            Highest frequency the clip can hold (half its original sample rate).
        n_time, n_bands : int
            Number of segments and bands.

        Examples
        --------
        >>> grid = RegionGrid.for_clip(1.0, 4000.0, n_time=4, n_bands=3)
        >>> grid.shape, grid.time_edges_s.tolist()
        ((4, 3), [0.0, 0.25, 0.5, 0.75, 1.0])
        >>> [round(edge) for edge in grid.band_edges_hz]
        [0, 781, 1787, 4000]
        """
        import librosa

        for name, value in (("n_time", n_time), ("n_bands", n_bands)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"expected {name} to be a positive integer, got {value!r}")
        if not duration_s > 0 or not nyquist_hz > 0:
            raise ParameterError(
                f"expected a positive duration and Nyquist frequency, got {duration_s} s "
                f"and {nyquist_hz} Hz"
            )
        bands = librosa.mel_frequencies(n_mels=n_bands + 1, fmin=0.0, fmax=float(nyquist_hz))
        bands[0], bands[-1] = 0.0, float(nyquist_hz)
        return cls(
            time_edges_s=np.linspace(0.0, float(duration_s), n_time + 1),
            band_edges_hz=np.asarray(bands, dtype=np.float64),
        )


class MaskedClip:
    """A clip whose grid regions can be removed: keep masks in, waveforms out.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform at the backend's rate ``sr``.
    sr : int
    grid : RegionGrid
    baseline : {"floor", "zero"}
        What a removed region is lowered to (see the module docstring).

    Examples
    --------
    >>> sr = 8000
    >>> t = np.arange(sr) / sr
    >>> y = (np.sin(2 * np.pi * 440 * t) * (t < 0.5)).astype(np.float32)  # a 0.5 s tone
    >>> clip = MaskedClip(y, sr, RegionGrid.for_clip(1.0, sr / 2, n_time=2, n_bands=2))
    >>> kept, without_first_half = clip.render(np.array([[[1, 1], [1, 1]], [[0, 0], [1, 1]]]))
    >>> bool(np.allclose(kept, y, atol=1e-4)), float(np.abs(without_first_half[:3800]).max()) < 0.01
    (True, True)
    """

    def __init__(self, y, sr: int, grid: RegionGrid, *, baseline: str = "floor"):
        import librosa

        if baseline not in BASELINES:
            raise ParameterError(f"expected baseline in {BASELINES}, got {baseline!r}")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or y.size == 0:
            raise ParameterError(f"expected a non-empty mono waveform, got shape {y.shape}")
        self.y, self.sr, self.grid, self.baseline = y, int(sr), grid, baseline
        self.n_fft, self.hop_length = stft_settings(self.sr)
        self.stft = librosa.stft(y, n_fft=self.n_fft, hop_length=self.hop_length)
        magnitude = np.abs(self.stft)
        if baseline == "floor":
            floor = FLOOR_SCALE * np.percentile(
                magnitude, FLOOR_PERCENTILE, axis=1, keepdims=True
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = np.where(magnitude > floor, floor / magnitude, 1.0)
            self.removed = (self.stft * gain).astype(self.stft.dtype)
        else:
            self.removed = np.zeros_like(self.stft)
        frequencies = librosa.fft_frequencies(sr=self.sr, n_fft=self.n_fft)
        times = librosa.frames_to_time(
            np.arange(self.stft.shape[1]), sr=self.sr, hop_length=self.hop_length
        )
        n_time, n_bands = grid.shape
        # Frames and bins outside the grid (none in time; above the Nyquist of the
        # original file in frequency) get index -1 and are never removed.
        self.segment_of_frame = _bin_index(times, grid.time_edges_s, n_time)
        self.band_of_bin = _bin_index(frequencies, grid.band_edges_hz, n_bands)

    def render(self, keep) -> np.ndarray:
        """Waveforms with the regions not kept removed.

        Parameters
        ----------
        keep : np.ndarray [shape=(n_masks, n_time, n_bands), dtype=bool]
            True where a region is kept.

        Returns
        -------
        waveforms : np.ndarray [shape=(n_masks, n), dtype=float32]
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.ndim != 3 or keep.shape[1:] != self.grid.shape:
            raise ParameterError(
                f"expected keep masks of shape (n_masks, {self.grid.shape[0]}, "
                f"{self.grid.shape[1]}), got {keep.shape}"
            )
        out = np.empty((keep.shape[0], self.y.size), dtype=np.float32)
        step = max(1, _CHUNK_VALUES // self.stft.size)
        for start in range(0, keep.shape[0], step):
            out[start : start + step] = self._render_chunk(keep[start : start + step])
        return out

    def _render_chunk(self, keep: np.ndarray) -> np.ndarray:
        import librosa

        # Pad with a "kept" row/column so index -1 (outside the grid) always keeps.
        padded = np.ones((keep.shape[0], keep.shape[1] + 1, keep.shape[2] + 1), dtype=bool)
        padded[:, :-1, :-1] = keep
        # [mask, bin, frame]: the region of each STFT value, looked up at once.
        kept = padded[:, self.segment_of_frame[None, :], self.band_of_bin[:, None]]
        spectra = np.where(kept, self.stft[None], self.removed[None])
        return librosa.istft(
            spectra, hop_length=self.hop_length, n_fft=self.n_fft, length=self.y.size
        ).astype(np.float32)


def _bin_index(values: np.ndarray, edges: np.ndarray, n: int) -> np.ndarray:
    """Index of the interval of ``edges`` each value falls in; -1 outside them."""
    index = np.searchsorted(edges, values, side="right") - 1
    # The top edge belongs to the last interval, not outside it.
    index[values == edges[-1]] = n - 1
    index[(values < edges[0]) | (values > edges[-1])] = -1
    return index.astype(np.int64)


def model_backend(model):
    """What a model hears waveforms through: the ``backend`` that explanations take.

    Parameters
    ----------
    model : EarmarkModel, PrototypeNetwork or GraphTagger

    Returns
    -------
    Backend or PatchBackend
        ``model.backend()`` (checked and loaded) for an earmark model; for a prototype
        network or a graph tagger, its own patch configuration (:class:`PatchBackend`).
    """
    if _is_prototype_network(model):
        return PatchBackend(model._config())
    return model.backend()


def class_scorer(model, class_index: int, *, backend=None) -> "ClassScorer":
    """The scorer for a model: :class:`PrototypeScorer` for a prototype network (or a
    graph tagger, which also reads its own patches),
    :class:`ClassScorer` for an earmark model (same arguments)."""
    kind = PrototypeScorer if _is_prototype_network(model) else ClassScorer
    return kind(model, class_index, backend=backend)


@dataclass(frozen=True)
class PatchBackend:
    """A prototype network's front end: audio at ``config.sr``, cut into its patches.

    It stands where an embedding backend stands for an earmark model, so an explained
    clip is resampled to the rate the network was trained at.

    Attributes
    ----------
    config : PatchConfig
        The network's (``network._config()``).
    """

    config: Any

    @property
    def sample_rate(self) -> int:
        return int(self.config.sr)


class ClassScorer:
    """The model's probability of one class for a batch of waveforms.

    Waveforms are cut into the backend's windows exactly as :mod:`earmark.embedding`
    cuts a file (same lead, hop and zero-padded last window), the windows of the whole
    batch are embedded together ``backend.batch_size`` at a time, and each waveform's
    frames are pooled into its clip embedding (or kept as a bag, for a frame model).
    :func:`class_scorer` picks this or :class:`PrototypeScorer` by the kind of model, so
    explanations and their checks need not ask which kind they score.

    Parameters
    ----------
    model : EarmarkModel
    class_index : int
        Column of :meth:`~earmark.model.EarmarkModel.predict_proba` to return.
    backend : Backend, optional
        ``model.backend()`` if not given.
    """

    def __init__(self, model, class_index: int, *, backend=None):
        self.model = model
        self.class_index = int(class_index)
        self.backend = backend if backend is not None else model.backend()
        self.n_calls = 0  # waveforms scored, for runtime reports

    @property
    def sample_rate(self) -> int:
        return int(self.backend.sample_rate)

    def embed(self, waveforms) -> list[np.ndarray]:
        """Frame embeddings of each waveform.

        Parameters
        ----------
        waveforms : np.ndarray [shape=(n_waveforms, n)]

        Returns
        -------
        list of np.ndarray [shape=(n_frames, dimension)]
        """
        from ..embedding import cut_frames, with_lead

        backend = self.backend.load()
        window, hop, lead = backend.window_samples, backend.hop_samples, backend.lead_samples
        frames, counts = [], []
        for waveform in np.asarray(waveforms, dtype=np.float32):
            blocks = with_lead([waveform], lead) if lead else [waveform]
            cut = list(cut_frames(blocks, window, hop))
            frames += cut
            counts.append(len(cut))
        if not frames:
            raise EarmarkError("no samples to embed")
        windows = np.stack(frames)
        X = np.concatenate(
            [self._embed_batch(windows[i : i + backend.batch_size])
             for i in range(0, len(windows), backend.batch_size)]
        )
        return np.split(X, np.cumsum(counts)[:-1])

    def _embed_batch(self, windows: np.ndarray) -> np.ndarray:
        backend = self.backend
        real = len(windows)
        if backend.fixed_batch and real < backend.batch_size:
            pad = np.zeros((backend.batch_size - real, windows.shape[1]), dtype=np.float32)
            windows = np.concatenate([windows, pad])
        return backend.embed_windows(windows)[:real]

    def proba(self, waveforms) -> np.ndarray:
        """Every class's probability for each waveform (an anomaly model: the logistic of its score).

        Returns
        -------
        P : np.ndarray [shape=(n_waveforms, n_classes)]
        """
        bags = self.embed(waveforms)
        self.n_calls += len(bags)
        if self.model.kind == "anomaly":
            # The explained quantity is the anomaly score (class "anomalous"), given as
            # its logistic: a probability whose log-odds is the score itself.
            from scipy.special import expit

            anomalous = expit(self.model.score_bags(bags))
            return np.stack([1.0 - anomalous, anomalous], axis=1)
        if self.model.kind == "frames":
            return self.model.predict_proba(bags)
        return self.model.predict_proba(np.stack([self.backend.pool(X) for X in bags]))

    def __call__(self, waveforms) -> np.ndarray:
        """The explained class's probability for each waveform.

        Returns
        -------
        scores : np.ndarray [shape=(n_waveforms,)]
        """
        return self.proba(waveforms)[:, self.class_index].astype(np.float64)


class PrototypeScorer(ClassScorer):
    """A prototype network's probability of one class for a batch of waveforms.

    Each waveform is cut into the network's own patches
    (:func:`~earmark.interpret.features.log_mel_patches` with its patch configuration,
    whatever its spectrogram) and scored as a file is
    (:func:`~earmark.interpret.protonet.clip_proba`: the softmax of the mean patch
    log-probability).

    Parameters
    ----------
    model : PrototypeNetwork
        Fitted on audio files (with ``patch_config_``).
    class_index : int
        Column of :meth:`~earmark.interpret.protonet.PrototypeNetwork.predict_proba`.
    backend : PatchBackend, optional
        ``model_backend(model)`` if not given.
    """

    def __init__(self, model, class_index: int, *, backend=None):
        self.model = model
        self.class_index = int(class_index)
        self.backend = backend if backend is not None else model_backend(model)
        self.n_calls = 0

    def embed(self, waveforms) -> list[np.ndarray]:
        """Patches of each waveform.

        Parameters
        ----------
        waveforms : np.ndarray [shape=(n_waveforms, n)]
            At the network's rate, ``backend.sample_rate``.

        Returns
        -------
        list of np.ndarray [shape=(n_patches, patch_frames, n_mels)]
        """
        from .features import log_mel_patches

        config = self.backend.config
        return [log_mel_patches(waveform, config)[0]
                for waveform in np.asarray(waveforms, dtype=np.float32)]  # fmt: skip

    def proba(self, waveforms) -> np.ndarray:
        """Every class's probability for each waveform.

        Returns
        -------
        P : np.ndarray [shape=(n_waveforms, n_classes)]
        """
        from .features import PatchSet

        if self.model.kind == "graph-tagger":
            from ..graph import clip_proba
        else:
            from .protonet import clip_proba

        blocks = self.embed(waveforms)
        self.n_calls += len(blocks)
        if not blocks:
            raise EarmarkError("no waveforms to score")
        item = np.repeat(np.arange(len(blocks)), [len(X) for X in blocks])
        none = np.zeros(len(item))
        patches = PatchSet(X=np.concatenate(blocks), item=item, start_s=none, end_s=none,
                           ok=np.ones(len(blocks), dtype=bool))  # fmt: skip
        return clip_proba(self.model, patches, len(blocks))[0]


def _is_prototype_network(model) -> bool:
    """A model that reads its own patches: a prototype network or a graph tagger."""
    from .protonet import PrototypeNetwork

    return isinstance(model, PrototypeNetwork) or getattr(model, "kind", None) == "graph-tagger"
