"""Classifiers behind one interface (see :mod:`mhsafety.classifiers.base`).

Build or load one of any kind through :mod:`mhsafety.registry`.
"""

from .base import NO_ANSWER, Classifier, Predictions, check_probabilities, read_manifest

__all__ = ["NO_ANSWER", "Classifier", "Predictions", "check_probabilities", "read_manifest"]
