"""A self-contained HTML page of a prototype network's prototypes, to look at and hear.

Each prototype is a real training segment (see :mod:`earmark.interpret.protonet`), so
the page shows, per class, every prototype's log-mel spectrogram, an ``<audio>`` player
of its sound, the file and span it was cut from, and the weights that tie it to the
classes (what its likeness adds to each class score). Everything is inlined as data
URIs, so the single file opens anywhere, offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._html import escape, page, png_data_uri, wav_data_uri
from .protonet import PrototypeNetwork

__all__ = ["prototypes_page", "write_prototypes_page"]


def prototypes_page(network: PrototypeNetwork, *, title: str | None = None, top_weights: int = 3) -> str:
    """HTML of every prototype: spectrogram, sound, source and class weights.

    Parameters
    ----------
    network : PrototypeNetwork
        Fitted; its sounds are shown when it has ``prototype_audio_`` (fitted with
        :func:`~earmark.interpret.protonet.fit_manifest`).
    title : str, optional
    top_weights : int
        Classes listed per prototype, by the size of their weight.

    Returns
    -------
    str
        A complete HTML document; one ``<audio>`` element per prototype with sound.
    """
    config = network.patch_config_ or {}
    sr = config.get("sr")
    hop_s = config["hop_length"] / sr if sr else None
    head = network.params_["head.weight"]  # (n_classes, n_prototypes)
    classes = [str(c) for c in network.classes_.tolist()]
    parts = [_summary(network)]
    for k, label in enumerate(classes):
        members = np.flatnonzero(network.prototype_class_ == k)
        parts.append(f'<h2 id="class-{k}">{escape(label)} '
                     f'<span class="note">({len(members)} prototype(s))</span></h2>')  # fmt: skip
        if members.size == 0:
            parts.append('<p class="note">No prototype of its own; other prototypes\' '
                         "weights decide this class.</p>")  # fmt: skip
            continue
        parts.append('<div style="display:flex;flex-wrap:wrap;gap:1em">')
        for j in members:
            parts.append(_card(network, int(j), classes, head, hop_s, sr, top_weights))
        parts.append("</div>")
    return page(title or "Prototypes of a prototype network", "\n".join(parts))


def write_prototypes_page(network: PrototypeNetwork, path, **kwargs) -> Path:
    """Write :func:`prototypes_page` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prototypes_page(network, **kwargs), encoding="utf-8")
    return path


def _summary(network: PrototypeNetwork) -> str:
    channels = network.params_["prototypes"].shape[1]
    text = (
        f"{network.n_prototypes_} prototypes for {len(network.classes_)} classes, "
        f"{channels} latent channels, {network.n_parameters_:,} learned parameters"
        + (" on the frozen convolutions of the pretrained aiSFX network"
           if getattr(network, "encoder", "log-mel") == "aisfx" else "")
        + ". The network "
        "scores a sound by its likeness to each prototype, band by band; every prototype "
        "below is the real training segment it equals."
    )
    refinement = getattr(network, "refinement_", None)
    if refinement:
        text += (
            f" Refined: prototypes {refinement['n_prototypes_before']} &rarr; "
            f"{refinement['n_prototypes_after']}, channels {refinement['n_channels_before']} "
            f"&rarr; {refinement['n_channels_after']}, parameters "
            f"{refinement['n_parameters_before']:,} &rarr; {refinement['n_parameters_after']:,}."
        )
    return f'<p class="note">{text}</p>'


def _card(network, j, classes, head, hop_s, sr, top_weights) -> str:
    segment = network.prototype_segments_[j]
    source = "training patch #{}".format(segment.get("row"))
    if "path" in segment:
        source = (f"{escape(Path(segment['path']).name)}, {segment['start_s']:.2f}&ndash;"
                  f"{segment['end_s']:.2f} s")  # fmt: skip
    weights = head[:, j]
    order = np.argsort(-np.abs(weights), kind="stable")[:top_weights]
    rows = "".join(
        f'<tr><td>{escape(classes[k])}</td><td class="num">{weights[k]:+.2f}</td></tr>' for k in order
    )
    audio = ""
    if network.prototype_audio_ is not None and sr:
        audio = (f'<audio controls preload="auto" style="width:100%" data-prototype="{j}" '
                 f'src="{wav_data_uri(network.prototype_audio_[j], sr)}"></audio>')  # fmt: skip
    figure = _spectrogram(network.prototype_patches_[j], hop_s, classes[network.prototype_class_[j]], j)
    picture = png_data_uri(figure, dpi=80)
    return (
        f'<figure class="prototype" id="prototype-{j}" style="margin:0;width:260px">'
        f'<img alt="log-mel spectrogram of prototype {j}" src="{picture}">'
        f"{audio}<figcaption>prototype {j}: {source}"
        f"<table><tr><th>class</th><th>weight</th></tr>{rows}</table></figcaption></figure>"
    )


def _spectrogram(patch: np.ndarray, hop_s: float | None, label: str, j: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2, 2.3), layout="constrained")
    axes = figure.add_subplot()
    extent = None
    if hop_s:
        extent = (0.0, patch.shape[0] * hop_s, 0, patch.shape[1])
    axes.imshow(patch.T, origin="lower", aspect="auto", cmap="magma", extent=extent)
    axes.set_xlabel("time (s)" if hop_s else "frame")
    axes.set_ylabel("mel band")
    axes.set_title(f"#{j} ({label})", fontsize=9)
    return figure
