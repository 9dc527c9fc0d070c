"""Domain adaptation: keep a classifier working when recording conditions change.

A classifier trained on one speaker, microphone or playing dynamic (the *source*
domain) loses accuracy on another (the *target*). This package measures the shift
without target labels and reduces it with target audio alone:

* :func:`domain_shift`: MMD and a domain classifier's accuracy between two embedding sets;
* :class:`DomainStandardizer`: per-domain standardisation (first-order alignment);
* :class:`CoralAligner`: CORAL, second-order alignment;
* :class:`DANNClassifier`: domain-adversarial training on frozen embeddings (torch to fit);
* :class:`SelfTrainingPrototypes`: prototypes re-estimated on confident target predictions;
* :class:`LabelShiftAdapter`: the target's class proportions estimated (EM), the source
  statistics weighted to them before aligning, and the decision corrected for them;
* :class:`PrototypeAdapter`: prototypes moved onto the target's classes by EM, with a
  common shift and the target's estimated proportions;
* :class:`ConsensusAdapter` (``auto``): each target item labelled as most methods, doing
  nothing included, agree; the unadapted label wins ties;
* :func:`adapt_model`: a saved :class:`~earmark.model.EarmarkModel` adapted to a target;
* :func:`evaluate_domains`: in-domain vs cross-domain accuracy, the gap, and what each
  method recovers;
* :func:`~earmark.adaptation.plots.plot_domains`: both domains in 2-D, before and after.

Every method reads target embeddings only; target labels are used to score, never to adapt.
"""

from .coral import CoralAligner
from .dann import DANNClassifier
from .evaluation import DomainEvaluation, evaluate_domains
from .labelshift import LabelShiftAdapter
from .methods import (
    ALIGNERS, CHOICES, LABEL_SHIFT, METHODS, adapt_model, estimated_priors, fit_adapter,
    make_adapter,
)
from .priors import correct_posteriors, estimate_target_priors
from .prototypes import PrototypeAdapter
from .selection import AUTO_CANDIDATES, AutoChoice, ConsensusAdapter, adapt_and_predict, consensus
from .selftrain import SelfTrainingPrototypes
from .shift import DomainShift, domain_shift, mmd2
from .standardize import DomainStandardizer

__all__ = [
    "ALIGNERS",
    "AUTO_CANDIDATES",
    "AutoChoice",
    "CHOICES",
    "LABEL_SHIFT",
    "LabelShiftAdapter",
    "METHODS",
    "PrototypeAdapter",
    "ConsensusAdapter",
    "adapt_and_predict",
    "consensus",
    "correct_posteriors",
    "estimate_target_priors",
    "estimated_priors",
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
