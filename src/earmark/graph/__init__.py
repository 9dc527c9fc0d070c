"""Graph neural network tagging over frozen time-frequency maps (after ATGNN).

* :class:`GraphTagger`: region nodes from a frozen network's maps (or log-mel cells),
  kNN or cluster-hyperedge message passing, learnable label nodes attending to regions;
  single- or multi-label, calibrated; model kind ``"graph-tagger"``.
* :func:`fit_manifest`, :func:`clip_proba`: from a manifest, per file.
* :mod:`~earmark.graph.links`: the class-to-region links as an explanation.
* :func:`cross_validate_manifest`: the honest splits of ``earmark evaluate``.
"""

# Public names load on first use (lazy_loader, as librosa does).
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["evaluation", "links", "tagger"],
    submod_attrs={
        "tagger": ["GraphTagger", "MODES", "parameter_names", "clip_logits", "clip_proba", "fit_manifest", "node_maps"],
        "links": ["link_mass_in_span", "links_on_grid", "links_section", "node_geometry", "plot_links", "predicted_tags"],
        "evaluation": ["cross_validate_manifest"],
    },
)
