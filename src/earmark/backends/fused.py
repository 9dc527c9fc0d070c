"""Fused backends: several backends' embeddings side by side, as one backend.

``get_backend("birdnet+aisfx+musicnn")`` is a :class:`FusedBackend` whose *parts* are
the three backends. It is usable wherever a backend is (``--backend
birdnet+aisfx+musicnn``), and it never embeds anything itself:

- **Clips.** The fused clip embedding is the parts' own clip embeddings (each pooled its
  own way), concatenated in the order the name gives. :func:`earmark.pipeline.embed_manifest`
  embeds each part under the part's own cache key, so a dataset embedded with
  ``birdnet`` earlier is not embedded with BirdNET again, and assembles the fused record
  from the parts' records.
- **Frames.** Parts have different rates, windows and hops. The fused frames lie on the
  grid of the part with the coarsest hop (the *reference*; the first such part on a
  tie): fused frame ``j`` spans the reference's frame ``j``, and each other part
  contributes the mean of its frames whose centre falls in that span, or its frame with
  the nearest centre if none does (:func:`align_frames`). A reference that describes
  only the middle of each window (aiSFX's step grid) lends the fused backend its focus
  too. Frame models and detectors read these.
- **Learning.** The parts' scales differ by orders of magnitude, and a 8448-d part would
  drown a 512-d one in any distance or L2 penalty. ``blocks`` gives each part's width;
  ``logreg`` then fits one regression per part and averages their log-probabilities
  (:class:`earmark.learners.PartsClassifier`), the other learners standardise each
  block and weigh it by its width (:class:`earmark.learners.BlockScaler`), inside the
  model, so that it travels in the model file.

Identity: the name is the parts' names joined by ``+`` (each part once); ``params`` maps
each part to its own parameters; :meth:`FusedBackend.identity` lists each part's full
identity (weights hash included), and :func:`earmark.backends.from_identity` rebuilds
each part through the registry from it, with the part's own checks: a part that is not
registered is refused, and a part's local parameters (the HEAR adapter's ``module``)
are never taken from a file (give them as ``--backend-param hear.module=...``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

import numpy as np

from ..exceptions import BackendError, ParameterError
from .base import Backend, Licence

__all__ = ["FusedBackend", "SEPARATOR", "part_names", "split_part_params", "align_frames"]

#: Joins part names into a fused backend's name.
SEPARATOR = "+"


def part_names(name: Any) -> list[str] | None:
    """The parts a fused backend name lists, or None for a plain backend name.

    Raises
    ------
    ParameterError
        If a part is empty or named twice.

    Examples
    --------
    >>> part_names("birdnet+aisfx")
    ['birdnet', 'aisfx']
    >>> part_names("birdnet") is None
    True
    """
    if not isinstance(name, str) or SEPARATOR not in name:
        return None
    names = [part.strip() for part in name.split(SEPARATOR)]
    if not all(names):
        raise ParameterError(f"expected backend names joined by '+', got {name!r}")
    if len(set(names)) != len(names):
        raise ParameterError(f"fused backend {name!r} names a part twice")
    return names


def split_part_params(names: Sequence[str], params: Mapping[str, Any] | None) -> dict[str, dict]:
    """Parameters of a fused backend, one dict per part.

    Accepts ``{"birdnet.hop_s": 1.5}`` (the ``--backend-param`` form) and
    ``{"birdnet": {"hop_s": 1.5}}`` (the form :meth:`FusedBackend.params` records).

    Raises
    ------
    ParameterError
        For a parameter that names no part.

    Examples
    --------
    >>> split_part_params(["birdnet", "aisfx"], {"birdnet.hop_s": 1.5})
    {'birdnet': {'hop_s': 1.5}, 'aisfx': {}}
    """
    split: dict[str, dict] = {name: {} for name in names}
    for key, value in (params or {}).items():
        if isinstance(key, str) and key in split:
            if not isinstance(value, Mapping):
                raise ParameterError(
                    f"parameters of part {key!r}: expected an object, got {type(value).__name__}"
                )
            split[key].update(value)
            continue
        part, dot, inner = str(key).partition(".")
        if not dot or part not in split or not inner:
            raise ParameterError(
                f"fused backend {SEPARATOR.join(names)!r}: parameter {key!r} names no part; "
                f"write PART.NAME, e.g. {names[0]}.hop_s"
            )
        split[part][inner] = value
    return split


def align_frames(
    reference_start_s: np.ndarray,
    reference_end_s: np.ndarray,
    X: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
) -> np.ndarray:
    """One part's frames resampled onto the reference grid.

    Fused frame ``j`` takes the mean of the part's frames whose centre lies in
    ``[reference_start_s[j], reference_end_s[j])``, or the part's frame with the nearest
    centre if none does.

    Parameters
    ----------
    reference_start_s, reference_end_s : np.ndarray [shape=(m,)]
    X : np.ndarray [shape=(n, d)]
    start_s, end_s : np.ndarray [shape=(n,)]

    Returns
    -------
    np.ndarray [shape=(m, d), dtype=float32]

    Examples
    --------
    >>> X = np.arange(4, dtype=np.float32)[:, None]
    >>> align_frames(np.array([0.0, 2.0]), np.array([2.0, 4.0]), X,
    ...              np.array([0.0, 1, 2, 3]), np.array([1.0, 2, 3, 4])).ravel().tolist()
    [0.5, 2.5]
    """
    X = np.asarray(X, dtype=np.float32)
    if X.shape[0] == 0:
        raise BackendError("cannot align a part with no frames")
    centres = (np.asarray(start_s, dtype=np.float64) + np.asarray(end_s, dtype=np.float64)) / 2
    lo = np.searchsorted(centres, reference_start_s, side="left")
    hi = np.searchsorted(centres, reference_end_s, side="left")
    # Frames sorted by centre: a prefix sum gives every span's mean in one pass.
    cumulative = np.vstack([np.zeros((1, X.shape[1])), np.cumsum(X, axis=0, dtype=np.float64)])
    counts = hi - lo
    out = (cumulative[hi] - cumulative[lo]) / np.maximum(counts, 1)[:, None]
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        middle = (np.asarray(reference_start_s)[empty] + np.asarray(reference_end_s)[empty]) / 2
        nearest = np.abs(centres[None, :] - middle[:, None]).argmin(axis=1)
        out[empty] = X[nearest]
    return out.astype(np.float32)


def _licence(parts: Sequence[Backend]) -> Licence:
    """The strictest terms of the parts: non-commercial if any part is."""
    uses = [part.licence.commercial_use for part in parts]
    commercial = False if False in uses else (None if None in uses else True)
    return Licence(
        name="; ".join(f"{part.name}: {part.licence.name}" for part in parts),
        commercial_use=commercial,
        attribution=" ".join(part.licence.attribution for part in parts if part.licence.attribution),
    )


class FusedBackend(Backend):
    """Several backends' embeddings concatenated (see the module docstring).

    Parameters
    ----------
    parts : sequence of Backend
        Two or more backends of different names; usually made by
        ``get_backend("a+b")``.

    Attributes
    ----------
    parts : tuple of Backend
    reference : Backend
        The part with the coarsest hop, whose frame grid the fused frames take.
    blocks : tuple of int
        Each part's dimension, in order: column ``sum(blocks[:i])`` starts part ``i``.

    Examples
    --------
    >>> from earmark.backends import get_backend
    >>> fused = get_backend("placeholder+mfcc")
    >>> fused.name, fused.blocks, fused.dimension
    ('placeholder+mfcc', (16, 120), 136)
    >>> fused.params
    {'placeholder': {'window_s': 0.5, 'hop_s': None}, 'mfcc': {'n_mfcc': 20, 'window_s': 1.0, 'hop_s': 0.5}}
    """

    name = "fused"
    description = "several backends side by side: name them joined by '+', e.g. birdnet+aisfx"
    licence = Licence("the parts' licences", commercial_use=None)
    code_version = "1"
    pooling = "parts"

    def __init__(self, parts: Sequence[Backend]):
        parts = tuple(parts)
        if len(parts) < 2 or not all(isinstance(part, Backend) for part in parts):
            raise ParameterError("a fused backend needs two or more backends")
        if any(isinstance(part, FusedBackend) for part in parts):
            raise ParameterError("a fused backend's parts cannot be fused backends themselves")
        names = [part.name for part in parts]
        if len(set(names)) != len(names):
            raise ParameterError(f"fused backend names a part twice: {names}")
        super().__init__(**{part.name: part.params for part in parts})
        self.parts = parts
        self.name = SEPARATOR.join(names)
        self.licence = _licence(parts)
        self.blocks = tuple(int(part.dimension) for part in parts)
        self.dimension = sum(self.blocks)
        self.reference = max(parts, key=lambda part: part.hop_s)  # first on a tie
        reference = self.reference
        self.sample_rate = reference.sample_rate
        self.window_samples = reference.window_samples
        self.hop_samples = reference.hop_samples
        self.lead_samples = reference.lead_samples
        # Fused frames carry the reference's timestamps, its focus's where it has one.
        self.focus_samples = reference.focus_samples
        self.batch_size = reference.batch_size

    # ----------------------------------------------------------------- identity
    @property
    def version(self) -> str:
        return f"fused-{self.code_version}(" + ",".join(part.version for part in self.parts) + ")"

    @property
    def weights_hash(self) -> str:  # noqa: D401 - the parts' hashes, hashed together
        digest = hashlib.sha256(b"earmark-fused")
        for part in self.parts:
            digest.update(f"|{part.name}:{part.weights_hash}".encode())
        return digest.hexdigest()

    def identity(self) -> dict[str, Any]:
        """The base identity plus ``parts``: each part's own full identity."""
        return {**super().identity(), "parts": [part.identity() for part in self.parts]}

    # ------------------------------------------------------------ availability
    def require(self) -> None:  # type: ignore[override]
        for part in self.parts:
            part.require()

    def is_available(self) -> bool:  # type: ignore[override]
        return all(part.is_available() for part in self.parts)

    def _load(self) -> None:
        for part in self.parts:
            part.load()

    # --------------------------------------------------------------- embedding
    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        raise BackendError(
            f"{self.name}: a fused backend embeds audio through its parts "
            f"(earmark.embedding.embed_file), not windows"
        )

    def block_slices(self) -> list[slice]:
        """Columns of each part in a fused embedding."""
        edges = np.concatenate([[0], np.cumsum(self.blocks)])
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def pool(self, X: np.ndarray) -> np.ndarray:
        """Each part's pooling of its columns of aligned frames, concatenated.

        Close to, not equal to, the fused clip embedding, which pools each part's own
        frames before alignment (used where only aligned frames are at hand).
        """
        if X.shape[0] == 0:
            raise BackendError(f"{self.name}: cannot pool zero frames")
        return np.concatenate(
            [part.pool(X[:, columns]) for part, columns in zip(self.parts, self.block_slices())]
        )

    def combine(self, frames: Sequence[Any]):
        """The fused :class:`~earmark.embedding.FrameEmbeddings` of the parts' own.

        Parameters
        ----------
        frames : sequence of FrameEmbeddings
            One per part, in order, of the same audio.

        Returns
        -------
        FrameEmbeddings
            Frames on the reference part's grid, ``clip`` the parts' clips concatenated.
        """
        from ..embedding import FrameEmbeddings

        if len(frames) != len(self.parts):
            raise BackendError(f"{self.name}: expected {len(self.parts)} parts' frames, got {len(frames)}")
        reference = frames[self.parts.index(self.reference)]
        X = np.concatenate(
            [np.asarray(part.X, dtype=np.float32) if part is reference else
             align_frames(reference.start_s, reference.end_s, part.X, part.start_s, part.end_s)
             for part in frames],
            axis=1,
        )
        return FrameEmbeddings(
            X=X,
            start_s=np.asarray(reference.start_s, dtype=np.float64),
            end_s=np.asarray(reference.end_s, dtype=np.float64),
            duration_s=reference.duration_s,
            clip=np.concatenate([np.asarray(part.clip, dtype=np.float32) for part in frames]),
        )

    def __repr__(self) -> str:
        return f"FusedBackend({', '.join(map(repr, self.parts))})"
