"""Screen a counselling chatbot's replies before they go out: a Python API and an HTTP service.

    >>> from mhsafety.guard import Guard
    >>> guard = Guard.load("checkpoints/baseline")
    >>> guard.check("[seeker]I can't sleep.", "[supporter]Have you tried warm milk?")

The service (``mhsafety serve``) lives in :mod:`mhsafety.guard.service`, imported only when
used, so this package does not import FastAPI.
"""

from .core import (
    DEFAULT_THRESHOLD,
    THRESHOLD_KEY,
    Calibration,
    CheckResult,
    Guard,
    calibrate,
    checkpoint_threshold,
    decide,
    make_example,
    pick_threshold,
    save_threshold,
    unverified,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "THRESHOLD_KEY",
    "Calibration",
    "CheckResult",
    "Guard",
    "calibrate",
    "checkpoint_threshold",
    "decide",
    "make_example",
    "pick_threshold",
    "save_threshold",
    "unverified",
]
