"""Interpretability: local explanations, their reliability, prototypes and pages to show them."""

# Public names load on first use (lazy_loader, as librosa does): importing the package
# stays cheap, and every name below is importable from here.
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=['explain', 'features', 'perturb', 'protonet', 'prototypes_page', 'refine', 'reliability', 'render', 'encoders'],
    submod_attrs={
        "explain": ['Explanation', 'explain', 'explain_file'],
        "features": ['PatchConfig', 'PatchSet', 'log_mel', 'log_mel_patches', 'manifest_patches'],
        "perturb": ['RegionGrid', 'MaskedClip', 'ClassScorer', 'PrototypeScorer', 'PatchBackend', 'class_scorer', 'model_backend'],
        "protonet": ['PrototypeNetwork', 'fit_manifest', 'clip_proba'],
        "prototypes_page": ['prototypes_page', 'write_prototypes_page'],
        "refine": ['RefineReport', 'refine', 'refine_manifest'],
        "reliability": ['Curve', 'Reliability', 'assess', 'deletion_insertion', 'stability'],
        "render": ['explanation_page', 'plot_curves', 'plot_explanation', 'write_explanation'],
        "encoders": ['ENCODERS', 'check_encoder', 'frozen_maps', 'patch_config'],
    },
)
