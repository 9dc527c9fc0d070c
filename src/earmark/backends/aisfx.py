"""aiSFX: a CNN trained to index sound-effects libraries (Ma & Lerch, ISMIR 2022).

The weights are the checkpoint shipped inside the ``aisfx`` 0.1.2 wheel (the paper's
"X-Sequential-CE" model, trained across nine sound-effects libraries). Its embedding
network reads a block of 100 frames of log-mel spectrogram (44.1 kHz, 96 HTK mel bands,
n_fft 2048, hop 1024: about 2.3 s) and returns 512 numbers (mean over frequency, max
over time of the last convolution block).

One frame of earmark is one block: ``window_samples = 2048 + 99 * 1024 = 103424``
samples give exactly 100 STFT frames with ``center=False``, and the hop, 50 * 1024 =
51200 samples (1.161 s), is the package's own 50 % block hop, so consecutive frames tile
the same mel grid. The package computes one ``center=True`` spectrogram of the whole
file, whose first frame is centred on sample 0 with 1024 zeros before it; the backend
declares those zeros (``lead_samples = 1024``), so our frame ``i`` covers samples
``[i * 51200 - 1024, i * 51200 + 102400)`` and is the package's block ``i`` (see
``tests/backends/test_aisfx.py``). Timestamps are clipped to the audio: the first frame
spans 0 to 2.322 s. Only the end can differ: where a file's length is not a multiple of
1024 samples, our last window holds one more STFT frame of audio (the package's
spectrogram stops at the frame centred on the last multiple of 1024 and pads blocks
with zero frames), and the package can count one block more or fewer than we do.
(Before ``code_version`` 2 the windows started on sample 0, 23 ms later than the
package's grid: cosine to its blocks 0.997 or more, and 1.5 points less accuracy on
philharmonia-mini.)

Loudness (``normalize``): the package scales each file to a peak of 1 before the mel
spectrogram (the ``log10(1 + 10000 * mel)`` compression makes the output depend on
level). A stream cannot know a file's peak before its end, so by default each window
is scaled to its own peak, which is the package's scaling whenever the window holds the
file's loudest sample, hence for every clip up to 2.3 s. ``normalize="none"`` keeps the
level of the input (full scale is 1.0).

Grid (``grid``): the package's 2.3 s blocks (``"blocks"``, the default) say what sounds
in a clip, but not when: a 0.4 s note is a sixth of its block. ``grid="steps"`` is the
detection grid: one frame per time step of the last convolution block's map (8 STFT
frames, 0.186 s), read at the centre of a window of :data:`STEP_WINDOW_FRAMES` frames
(0.58 s, 3 steps) and described by its 512 channels' mean and maximum over the 12 band
groups (1024 numbers, so that where in frequency a channel fires still counts). The
frame describes its step, not the whole window it heard (``focus_samples``): frame ``i``
spans ``[i * 8192, (i + 1) * 8192)`` samples. Each window is computed on its own (the
backend contract: a frame depends on its window only), 3 steps for the 1 kept, about 3
times the blocks' compute per second of audio. Chosen on the detector development
soundscapes (``benchmarks/detector.py``, weak labels): segment F 0.61 and onset F 0.57
with 0.58 s windows, 0.55 and 0.52 with 0.95 s windows (5 steps), 0.46 and 0.38 with
the steps of whole 2.3 s blocks, against BirdNET's 0.31 and 0.22 at its 0.5 s hop.

The network (``EmbeddingNet`` of ``aisfx/models/cnn2d.py``, itself the 9-layer CNN of
the DCASE 2018 cross-task baseline, Kong et al.) and the spectrogram
(``aisfx/spectrogram/spectrogram_librosa.py``) are rewritten here rather than imported:
the package pins numpy 1.23 and librosa 0.9 and its modules import what earmark does not
need. The checkpoint is read with torch's weights-only unpickler (the file also holds
numpy integers, allowed by name for this one load) after its SHA-256 is checked.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from ..exceptions import BackendError, BackendUnavailableError, ParameterError
from .base import Backend, Licence, file_sha256

__all__ = ["AisfxBackend", "CHECKPOINT_SHA256", "STEP_WINDOW_FRAMES", "pretrained_network"]

#: SHA-256 of ``aisfx/models/checkpoint.pth`` in the aisfx 0.1.2 wheel; any other file
#: is refused, since the network below is rebuilt for this one.
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"

_SAMPLE_RATE = 44100
_N_FFT = 2048
_MEL_HOP = 1024
_N_MELS = 96
_BLOCK_FRAMES = 100  # what the network was trained on (aisfx.inference.EMB_BLOCK_LENGTH)
# Upper end of the min-max scaling of the log-mel ("original" in
# aisfx.preprocessing.spectrogram_normalize: the maximum over the paper's datasets).
_LOG_MEL_MAX = 9.457798957824707
_NORMALIZE = ("window", "none")
_GRIDS = ("blocks", "steps")
#: STFT frames per window of the ``"steps"`` grid (3 map steps; the centre one is kept).
STEP_WINDOW_FRAMES = 24
_STEP_FRAMES = 8  # STFT frames per time step of the last block's map (three 2x pools)


def _embedding_network():
    """The embedding half of aiSFX's ``CrossNet``, as a torch module.

    Adapted from ``EmbeddingNet('max', ks=3, strd=1, hl1=64)`` in
    ``aisfx/models/cnn2d.py`` (aisfx 0.1.2, A. B. Ma and A. Lerch, CC BY 4.0), which
    credits the DCASE 2018 cross-task baseline (Kong et al., arXiv:1808.00773). Module
    names are kept so that the checkpoint's ``embedding_net.*`` tensors load unchanged.
    Built in a function so that torch is imported only when the backend loads.
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class ConvBlock(nn.Module):
        def __init__(self, in_channels: int, out_channels: int):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.bn2 = nn.BatchNorm2d(out_channels)

        def forward(self, x, pool: bool):
            x = functional.relu(self.bn1(self.conv1(x)))
            x = functional.relu(self.bn2(self.conv2(x)))
            # The last block's (1, 1) max pool upstream is the identity.
            return functional.max_pool2d(x, kernel_size=2) if pool else x

    class EmbeddingNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_block1 = ConvBlock(1, 64)
            self.conv_block2 = ConvBlock(64, 128)
            self.conv_block3 = ConvBlock(128, 256)
            self.conv_block4 = ConvBlock(256, 512)

        def feature_maps(self, log_mel):
            """(batch, 100 frames, 96 mels) -> (batch, 512, 12 time steps, 12 bands)."""
            x = log_mel.unsqueeze(1)
            x = self.conv_block1(x, pool=True)
            x = self.conv_block2(x, pool=True)
            x = self.conv_block3(x, pool=True)
            return self.conv_block4(x, pool=False)

        def forward(self, log_mel):
            """(batch, 100 frames, 96 mels) -> (batch, 512)."""
            return torch.amax(self.feature_maps(log_mel).mean(dim=3), dim=2)

    return EmbeddingNet()


def _fold_batch_norms(network):
    """Fold each inference-mode batch norm into the convolution before it.

    Same output to float rounding; with channels-last memory, about 1.5 times faster
    on CPU than the network as trained.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in (network.conv_block1, network.conv_block2, network.conv_block3,
                  network.conv_block4):  # fmt: skip
        block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()
    return network


def _read_state_dict(path: Path) -> dict:
    """The ``embedding_net`` tensors of the checkpoint, read without running its code.

    The file is a pickled ``(state_dict, datasets)`` pair whose dataset indices are
    numpy integers, which torch's weights-only unpickler refuses unless allowed.
    """
    import torch

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType]
    with torch.serialization.safe_globals(allowed):
        weights, _datasets = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def pretrained_network():
    """aiSFX's embedding network with the checked checkpoint loaded, as trained (batch
    norms not folded), in inference mode: the start of :mod:`earmark.networks`'
    fine-tuning, which trains its upper blocks.

    Returns
    -------
    torch.nn.Module
        With ``conv_block1`` ... ``conv_block4`` (each ``forward(x, pool)``),
        ``feature_maps`` and ``forward`` as in the backend.

    Raises
    ------
    BackendUnavailableError, BackendError
        Without the aisfx wheel, or with a checkpoint of another hash.
    """
    return _checked_network(AisfxBackend())


def _checked_network(backend: AisfxBackend):
    """The embedding network with ``backend``'s checkpoint loaded after its SHA-256 is
    checked, in inference mode (batch norms not folded)."""
    (path,) = backend.weights_paths()
    digest = file_sha256(path)
    if digest != CHECKPOINT_SHA256:
        raise BackendError(
            f"{path}: expected the aisfx 0.1.2 checkpoint (SHA-256 {CHECKPOINT_SHA256}), "
            f"got SHA-256 {digest}; refusing to load it"
        )
    network = _embedding_network()
    network.load_state_dict(_read_state_dict(path))
    return network.eval()


class AisfxBackend(Backend):
    """aiSFX sound-effects embeddings: 512-d, one frame per 2.3 s block, 1.16 s hop.

    Parameters
    ----------
    normalize : {"window", "none"}
        Loudness scaling before the spectrogram. ``"window"`` (default) scales each
        window to a peak of 1, which is what the package does to a whole file, hence
        its output for clips up to 2.3 s; ``"none"`` embeds the input at its own level
        (peak-normalize a file yourself to match the package on longer files).
    grid : {"blocks", "steps"}
        ``"blocks"`` (default): the package's 2.3 s blocks, 512-d. ``"steps"``: one
        1024-d frame every 0.186 s, for detection (see the module docstring).

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> backend = get_backend("aisfx")
    >>> backend.dimension, backend.window_samples, backend.hop_samples
    (512, 103424, 51200)
    >>> steps = get_backend("aisfx", grid="steps")
    >>> steps.dimension, steps.window_samples, steps.hop_samples, round(steps.hop_s, 3)
    (1024, 25600, 8192, 0.186)
    """

    name = "aisfx"
    description = "aiSFX sound-effects CNN (ISMIR 2022), 512-d, 2.3 s blocks at 44.1 kHz"
    licence = Licence(
        "CC BY 4.0 (LICENSE file in the aisfx wheel; its PyPI metadata says MIT)",
        commercial_use=True,
        attribution=(
            "A. B. Ma and A. Lerch, Representation Learning for the Automatic Indexing "
            "of Sound Effects Libraries, ISMIR 2022 (aiSFX weights, (c) 2022 A.B. Ma "
            "and A. Lerch, CC BY 4.0, https://github.com/alisonbma/aisfx)"
        ),
        note=(
            "weights from the aisfx 0.1.2 wheel, whose metadata classifier says MIT "
            "while its LICENSE file is CC BY 4.0: both allow commercial use, CC BY "
            "requires the credit line"
        ),
    )
    requires = ("aisfx", "torch")
    extra = "aisfx"
    install_hint = "pip install 'earmark[aisfx]' && pip install --no-deps aisfx==0.1.2"
    code_version = "2"  # 2: lead_samples, the package's frame grid

    sample_rate = _SAMPLE_RATE
    dimension = 512
    window_samples = _N_FFT + (_BLOCK_FRAMES - 1) * _MEL_HOP  # 103424: 100 frames
    hop_samples = (_BLOCK_FRAMES // 2) * _MEL_HOP  # 51200: the package's 50 % hop
    lead_samples = _N_FFT // 2  # 1024: the zeros of the package's center=True STFT
    batch_size = 16
    pooling = "mean"

    def __init__(self, *, normalize: str = "window", grid: str = "blocks"):
        if normalize not in _NORMALIZE:
            raise ParameterError(
                f"normalize must be one of {', '.join(map(repr, _NORMALIZE))}, "
                f"got {normalize!r}"
            )
        if grid not in _GRIDS:
            raise ParameterError(
                f"grid must be one of {', '.join(map(repr, _GRIDS))}, got {grid!r}"
            )
        # The default grid is left out of the parameters, so that embeddings cached
        # before the grid existed keep their key.
        super().__init__(normalize=normalize, **({} if grid == "blocks" else {"grid": grid}))
        self.normalize = normalize
        self.grid = grid
        if grid == "steps":
            self.dimension = 2 * 512
            self.window_samples = _N_FFT + (STEP_WINDOW_FRAMES - 1) * _MEL_HOP
            self.hop_samples = self.focus_samples = _STEP_FRAMES * _MEL_HOP
            # Frame i's window is centred on step i, [i * hop, (i + 1) * hop).
            self.lead_samples = (self.window_samples - self.hop_samples) // 2
            self.batch_size = 64

    # ----------------------------------------------------------------- weights
    def weights_paths(self) -> Sequence[Path]:
        # find_spec locates the wheel without running its __init__, which imports
        # modules earmark does not install.
        spec = importlib.util.find_spec("aisfx")
        if spec is None or not spec.submodule_search_locations:
            raise BackendUnavailableError(
                f"backend 'aisfx' needs the aisfx package; install it with: {self.install_hint}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"
        if not path.is_file():
            raise BackendUnavailableError(f"aisfx is installed but {path} is missing")
        return (path,)

    def _load(self) -> None:
        import librosa
        import torch

        network = _fold_batch_norms(_checked_network(self))
        self._network = network.to(memory_format=torch.channels_last)
        self._torch = torch
        self._window = torch.hann_window(_N_FFT)  # periodic, as librosa's "hann"
        # The package's librosa path: HTK mel scale, each filter scaled to unit sum.
        mel_basis = librosa.filters.mel(
            sr=_SAMPLE_RATE, n_fft=_N_FFT, n_mels=_N_MELS, fmin=0.0,
            fmax=_SAMPLE_RATE / 2, htk=True, norm=1.0,
        )  # fmt: skip
        self._mel_basis = torch.from_numpy(mel_basis.astype(np.float32))

    # --------------------------------------------------------------- embedding
    def log_mel(self, windows: np.ndarray) -> np.ndarray:
        """The network's input: scaled log-mel blocks, as the package computes them.

        Parameters
        ----------
        windows : np.ndarray [shape=(batch, 103424), dtype=float32]
            Or longer, ``2048 + (frames - 1) * 1024`` samples for ``frames`` >= 100
            (a whole clip at once, for the fine-tuned network of
            :mod:`earmark.networks`).

        Returns
        -------
        blocks : np.ndarray [shape=(batch, frames, 96), dtype=float32]
            ``log10(1 + 10000 * mel_power) / 9.4578``, time first; 100 frames for
            windows of ``window_samples``.
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        n = windows.shape[-1] if windows.ndim else 0
        if windows.ndim != 2 or n < self.window_samples or (n - _N_FFT) % _MEL_HOP:
            raise ParameterError(
                f"expected windows of shape (batch, {self.window_samples}) (or 2048 + a "
                f"multiple of 1024 samples beyond), got {windows.shape}"
            )
        self.load()
        with self._torch.inference_mode():
            return self._log_mel(self._torch.from_numpy(windows)).numpy()

    def _log_mel(self, y):
        torch = self._torch
        if self.normalize == "window":
            peak = y.abs().amax(dim=1, keepdim=True)
            y = y / torch.where(peak > 0, peak, torch.ones_like(peak))
        spectrum = torch.stft(
            y, n_fft=_N_FFT, hop_length=_MEL_HOP, window=self._window,
            center=False, return_complex=True,
        )  # fmt: skip
        power = spectrum.real.square() + spectrum.imag.square()  # (batch, 1025, 100)
        mel = torch.matmul(self._mel_basis, power)  # (batch, 96, 100)
        log_mel = torch.log10(mel * 10000.0 + 1.0) / _LOG_MEL_MAX
        return log_mel.transpose(1, 2).contiguous()

    def feature_maps(self, blocks: np.ndarray) -> np.ndarray:
        """The last convolution block's output, before pooling: what the network hears
        where, with time and frequency kept (the prototype network's frozen encoder).

        Parameters
        ----------
        blocks : np.ndarray [shape=(batch, 100, 96), dtype=float32]
            Scaled log-mel blocks (:meth:`log_mel`).

        Returns
        -------
        maps : np.ndarray [shape=(batch, 512, 12, 12), dtype=float32]
            Channels, time steps (about 0.19 s each), mel band groups (8 bands each).
        """
        blocks = np.ascontiguousarray(blocks, dtype=np.float32)
        if blocks.ndim != 3 or blocks.shape[1:] != (_BLOCK_FRAMES, _N_MELS):
            raise ParameterError(
                f"expected log-mel blocks of shape (batch, {_BLOCK_FRAMES}, {_N_MELS}), "
                f"got {blocks.shape}"
            )
        self.load()
        with self._torch.inference_mode():
            out = [self._network.feature_maps(self._torch.from_numpy(blocks[i : i + self.batch_size]))
                   for i in range(0, len(blocks), self.batch_size)]  # fmt: skip
            return self._torch.cat(out).contiguous().numpy()

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            blocks = self._log_mel(self._torch.from_numpy(windows))
            if self.grid == "blocks":
                return self._network(blocks).numpy()
            maps = self._network.feature_maps(blocks)  # (batch, 512, 3 steps, 12 bands)
            centre = maps[:, :, maps.shape[2] // 2, :]
            return self._torch.cat([centre.mean(dim=2), centre.amax(dim=2)], dim=1).numpy()
