"""Refine a prototype network by pruning what it does not use, then retraining briefly.

As APNet's authors did (Zinemanas et al. 2021), the prototypes themselves say what the
network can do without:

- a prototype that is the nearest one for no training patch decides nothing on its own;
- two prototypes closer to each other than most patches are to their nearest prototype
  say the same thing twice: the less used one is merged into the other (its head
  weights are added to the survivor's, which keeps the logits nearly unchanged);
- a latent channel whose weighted share of the decisive distances (each patch to its
  nearest prototype) is well below an equal share carries little.

Everything pruned is removed from the arrays (encoder, decoder, prototypes, weights),
the network is retrained for a few epochs and its prototypes pushed again, so they are
still real training segments. :class:`RefineReport` gives parameters and accuracy
before and after.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from ..exceptions import ParameterError
from .protonet import PrototypeNetwork, _distances, attach_audio, clip_proba

__all__ = ["RefineReport", "refine", "refine_manifest"]


@dataclass
class RefineReport:
    """What refinement removed and what it cost or gained.

    Attributes
    ----------
    n_prototypes_before, n_prototypes_after : int
    n_channels_before, n_channels_after : int
        Latent channels.
    n_parameters_before, n_parameters_after : int
        Learned numbers needed to classify (:attr:`PrototypeNetwork.n_parameters_`).
    unused : list of int
        Prototypes removed because no training patch had them nearest (old indices).
    merged : list of (int, int)
        ``(removed, kept)`` pairs of near-duplicate prototypes.
    channels_removed : list of int
    accuracy_before, accuracy_after : float
        On the data given to :func:`refine` (training patches, or the items of
        :func:`refine_manifest`): a check, not a held-out score.
    """

    n_prototypes_before: int
    n_prototypes_after: int
    n_channels_before: int
    n_channels_after: int
    n_parameters_before: int
    n_parameters_after: int
    unused: list[int] = field(default_factory=list)
    merged: list[tuple[int, int]] = field(default_factory=list)
    channels_removed: list[int] = field(default_factory=list)
    accuracy_before: float = float("nan")
    accuracy_after: float = float("nan")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["merged"] = [list(pair) for pair in self.merged]
        return out

    def summary(self) -> str:
        """A few lines for people."""
        return (
            f"prototypes {self.n_prototypes_before} -> {self.n_prototypes_after} "
            f"({len(self.unused)} unused, {len(self.merged)} merged), latent channels "
            f"{self.n_channels_before} -> {self.n_channels_after}, parameters "
            f"{self.n_parameters_before:,} -> {self.n_parameters_after:,}; accuracy on the "
            f"refinement data {self.accuracy_before:.1%} -> {self.accuracy_after:.1%}"
        )


def refine(
    network: PrototypeNetwork,
    X,
    y,
    *,
    segments=None,
    merge_threshold: float = 0.1,
    min_channel_share: float = 0.5,
    epochs: int = 5,
    random_state=0,
) -> tuple[PrototypeNetwork, RefineReport]:
    """Prune unused and redundant prototypes and weak channels, retrain, push again.

    Parameters
    ----------
    network : PrototypeNetwork
        Fitted; left unchanged.
    X : np.ndarray [shape=(n, frames, mels)]
        Training patches (those it was fitted on, or more of the same classes).
    y : array-like [shape=(n,)]
        Their labels, all among ``network.classes_``.
    segments : mapping of array-like [shape=(n,)], optional
        ``path``, ``start_s``, ``end_s`` of each patch (see :meth:`PrototypeNetwork.fit`).
    merge_threshold : float
        Two prototypes closer than this fraction of the median patch-to-nearest-prototype
        distance are merged.
    min_channel_share : float
        A channel is pruned when its share of the decisive distances is below this
        fraction of an equal share (``1 / n_channels``). 0 keeps every channel.
    epochs : int
        Epochs of retraining of the whole network before the new push.
    random_state : int or None

    Returns
    -------
    refined : PrototypeNetwork
        With ``refinement_`` set to the report as a dict.
    report : RefineReport
    """
    if not (merge_threshold >= 0 and 0 <= min_channel_share < 1):
        raise ParameterError(
            f"expected merge_threshold >= 0 and min_channel_share in [0, 1), got "
            f"{merge_threshold!r} and {min_channel_share!r}"
        )
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ParameterError(f"expected epochs >= 1, got {epochs!r}")
    y = np.asarray(y)
    known = np.isin(y, network.classes_)
    if not known.all():
        raise ParameterError(
            f"expected labels among the network's classes, got {sorted(set(y[~known].tolist()))}"
        )
    position = {label: k for k, label in enumerate(network.classes_.tolist())}
    targets = np.array([position[label] for label in y.tolist()], dtype=np.int64)
    params = network.params_
    Z = network.encode(X)
    D = _distances(Z, params).mean(axis=2)  # (n, n_prototypes)
    nearest = D.argmin(axis=1)
    usage = np.bincount(nearest, minlength=D.shape[1])

    keep, unused, merged, extra_head = _prune_prototypes(network, usage, D, merge_threshold)
    channels = _keep_channels(network, Z, nearest, min_channel_share)

    new = {name: value.copy() for name, value in params.items()}
    head = new["head.weight"] + extra_head
    new["head.weight"] = head[:, keep]
    new["prototypes"] = new["prototypes"][keep][:, channels]
    new["frequency_weights"] = new["frequency_weights"][keep]
    new["conv2.weight"], new["conv2.bias"] = new["conv2.weight"][channels], new["conv2.bias"][channels]
    new["decoder1.weight"] = new["decoder1.weight"][:, channels]
    new["channel_logits"] = new["channel_logits"][channels]

    refined = copy.deepcopy(network)
    refined.set_params(channels=(int(params["conv1.weight"].shape[0]), int(channels.size)))
    refined._train(new, X, targets, segments, init_prototypes=False, epochs=epochs,
                   seed=np.random.default_rng(random_state))  # fmt: skip
    report = RefineReport(
        n_prototypes_before=network.n_prototypes_,
        n_prototypes_after=refined.n_prototypes_,
        n_channels_before=int(params["prototypes"].shape[1]),
        n_channels_after=int(channels.size),
        n_parameters_before=network.n_parameters_,
        n_parameters_after=refined.n_parameters_,
        unused=unused,
        merged=merged,
        channels_removed=sorted(set(range(params["prototypes"].shape[1])) - set(channels.tolist())),
        accuracy_before=float(np.mean(network.predict(X) == y)),
        accuracy_after=float(np.mean(refined.predict(X) == y)),
    )
    refined.refinement_ = report.to_dict()
    return refined, report


def refine_manifest(
    network: PrototypeNetwork, manifest, **kwargs
) -> tuple[PrototypeNetwork, RefineReport]:
    """:func:`refine` on a manifest's items, cut as the network was trained; the
    prototypes' sounds are cut again and the accuracies are per item.

    Parameters
    ----------
    network : PrototypeNetwork
        Fitted with :func:`~earmark.interpret.protonet.fit_manifest`.
    manifest : Manifest
        Training items (single-label).
    **kwargs
        Passed to :func:`refine`.

    Returns
    -------
    refined : PrototypeNetwork
    report : RefineReport
    """
    from .features import manifest_patches

    config = network._config()
    patches = manifest_patches(manifest, config)
    y = manifest.y
    refined, report = refine(
        network, patches.X, y[patches.item],
        segments={"path": manifest.paths[patches.item], "start_s": patches.start_s,
                  "end_s": patches.end_s},
        **kwargs,
    )  # fmt: skip
    attach_audio(refined, config)
    for which, model in (("before", network), ("after", refined)):
        P, ok = clip_proba(model, patches, len(manifest))
        predicted = model.classes_[P[ok].argmax(axis=1)]
        setattr(report, f"accuracy_{which}", float(np.mean(predicted == y[ok])))
    refined.refinement_ = report.to_dict()
    return refined, report


def _prune_prototypes(network, usage, D, merge_threshold):
    """``(keep, unused, merged, extra_head)``; at least one prototype per class survives."""
    n_prototypes = len(usage)
    owner = network.prototype_class_
    P = network.params_["prototypes"]
    between = _distances(P, network.params_).mean(axis=2)  # (n_prototypes, n_prototypes)
    limit = merge_threshold * float(np.median(D.min(axis=1)))
    extra_head = np.zeros_like(network.params_["head.weight"])
    removed: set[int] = set()
    merged: list[tuple[int, int]] = []
    # The most used prototypes survive; their near-duplicates fold into them.
    order = np.argsort(-usage, kind="stable")
    for position, j in enumerate(order):
        if j in removed:
            continue
        for k in order[position + 1 :]:
            if k not in removed and between[j, k] <= limit:
                removed.add(int(k))
                merged.append((int(k), int(j)))
                extra_head[:, j] += network.params_["head.weight"][:, k]
    unused = [int(j) for j in range(n_prototypes) if usage[j] == 0 and j not in removed]
    for j in unused:
        others = [k for k in range(n_prototypes) if owner[k] == owner[j] and k != j
                  and k not in removed and k not in unused]  # fmt: skip
        if others:
            removed.add(j)
    unused = [j for j in unused if j in removed]
    keep = np.array([j for j in range(n_prototypes) if j not in removed], dtype=np.int64)
    return keep, unused, merged, extra_head


def _keep_channels(network, Z, nearest, min_channel_share) -> np.ndarray:
    """Channels whose weighted share of the patch-to-nearest-prototype distance is not small."""
    w = network.channel_weights()
    P = network.params_["prototypes"][nearest]
    contribution = w * ((Z - P) ** 2).sum(axis=(2, 3)).mean(axis=0)
    share = contribution / max(float(contribution.sum()), 1e-12)
    keep = np.flatnonzero(share >= min_channel_share / len(share))
    if keep.size == 0:  # never remove everything: keep the most telling channel
        keep = np.array([int(share.argmax())])
    return keep
