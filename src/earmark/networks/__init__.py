"""Networks trained on the user's clips: small ones from scratch, aiSFX fine-tuned.

* :data:`ARCHITECTURES`: ``timbre`` (~10 k parameters), ``vgg-small`` (~50 k), ``sbcnn``
  (~250 k) on log-mel; ``aisfx-finetune`` (aiSFX's last block trained on cached lower
  blocks) and ``aisfx-head`` (a new head on its frozen maps).
* :class:`NetworkClassifier`: a scikit-learn estimator over front-end inputs, with
  augmentation, weight decay and early stopping on a group-aware validation split of
  its training rows; a model of kind ``"network"`` once fitted from files
  (:func:`fit_manifest`).
* :mod:`~earmark.networks.frontends`: log-mel, or aiSFX's frozen blocks, per clip.
* :func:`network_inputs`: one call for evaluation and learning curves (front-end inputs
  of a manifest, flattened, with the learner to fit on them).
"""

# Public names load on first use (lazy_loader, as librosa does).
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["architectures", "classifier", "frontends", "study"],
    submod_attrs={
        "architectures": ["ARCHITECTURES", "Architecture", "check_architecture"],
        "classifier": ["NetworkClassifier", "fit_manifest", "validation_split", "check_state", "MIN_PER_CLASS"],
        "frontends": ["FRONTENDS", "Frontend", "frontend_for", "clip_inputs", "durations"],
        "study": ["network_inputs", "FAMILIES", "family"],
    },
)
