"""Classifiers behind one interface (see :mod:`mhsafety.classifiers.base`)."""

from .base import (
    KINDS,
    Classifier,
    check_probabilities,
    classifier_class,
    create_classifier,
    load_classifier,
    read_manifest,
)

__all__ = [
    "KINDS",
    "Classifier",
    "check_probabilities",
    "classifier_class",
    "create_classifier",
    "load_classifier",
    "read_manifest",
]
