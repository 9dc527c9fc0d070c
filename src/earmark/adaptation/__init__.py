"""Domain adaptation: keep a classifier working when recording conditions change.

A classifier trained on one speaker, microphone or playing dynamic (the *source*
domain) loses accuracy on another (the *target*). This package measures the shift
without target labels and reduces it with target audio alone:

* :func:`domain_shift`: MMD and a domain classifier's accuracy between two embedding sets;
* :class:`DomainStandardizer`: per-domain standardisation (first-order alignment);
* :class:`CoralAligner`: CORAL, second-order alignment;
* :class:`DANNClassifier`: domain-adversarial training on frozen embeddings (torch to fit);
* :class:`SelfTrainingPrototypes`: prototypes re-estimated on confident target predictions;
* :func:`adapt_model`: a saved :class:`~earmark.model.EarmarkModel` adapted to a target;
* :func:`evaluate_domains`: in-domain vs cross-domain accuracy, the gap, and what each
  method recovers;
* :func:`~earmark.adaptation.plots.plot_domains`: both domains in 2-D, before and after.

Every method reads target embeddings only; target labels are used to score, never to adapt.
"""

from .coral import CoralAligner
from .dann import DANNClassifier
from .evaluation import DomainEvaluation, evaluate_domains
from .methods import ALIGNERS, METHODS, adapt_model, fit_adapter, make_adapter
from .selftrain import SelfTrainingPrototypes
from .shift import DomainShift, domain_shift, mmd2
from .standardize import DomainStandardizer

__all__ = [
    "ALIGNERS",
    "METHODS",
    "CoralAligner",
    "DANNClassifier",
    "DomainEvaluation",
    "DomainShift",
    "DomainStandardizer",
    "SelfTrainingPrototypes",
    "adapt_model",
    "domain_shift",
    "evaluate_domains",
    "fit_adapter",
    "make_adapter",
    "mmd2",
]
