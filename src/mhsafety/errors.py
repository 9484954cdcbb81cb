"""Exceptions whose message is shown to the user as one sentence (the CLI exits 2)."""

from __future__ import annotations


class MhsafetyError(Exception):
    """Base class: the message names the file, item, field and what was expected."""


class DataError(MhsafetyError):
    """Input data (a dataset, a prediction file, a checkpoint) is missing or malformed."""


class UsageError(MhsafetyError):
    """Arguments that cannot work together, or an optional dependency that is missing."""


def missing_extra(package: str, extra: str) -> UsageError:
    """The error for an optional dependency that is not installed."""
    return UsageError(
        f"this needs the '{package}' package, which is not installed; "
        f"install it with: pip install 'mhsafety[{extra}]'"
    )
