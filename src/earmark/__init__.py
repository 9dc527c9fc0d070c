"""earmark: machine listening with little labelled data.

The names most scripts need, importable from here (loaded on first use):

>>> import earmark
>>> manifest = earmark.load_dataset(earmark.datasets.demo_path())  # doctest: +SKIP
>>> backend = earmark.get_backend("mfcc")

Subpackages: ``backends``, ``datasets``, ``store``, ``models``, ``fewshot``,
``detection``, ``interpret``, ``adaptation``, ``explore``, ``distributed``; see
``docs/architecture.md`` for how they layer.
"""

import lazy_loader

from .exceptions import AudioError, EarmarkError, ModelFileError, ParameterError

__version__ = "0.1.0"

__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__,
    submodules=[
        "adaptation", "audio", "backends", "datasets", "detection", "distributed", "embedding",
        "evaluation", "explore", "fewshot", "interpret", "learners", "manifest", "models",
        "pipeline", "splits", "store", "taxonomy",
    ],
    submod_attrs={
        "datasets": ["load_dataset"],
        "backends": ["get_backend"],
        "store": ["open_store"],
        "pipeline": ["clip_embeddings", "embed_manifest"],
        "evaluation": ["cross_validate"],
        "models": ["EarmarkModel", "load_model", "predict_files"],
    },
)
__all__ = ["AudioError", "EarmarkError", "ModelFileError", "ParameterError", "__version__", *_lazy]
