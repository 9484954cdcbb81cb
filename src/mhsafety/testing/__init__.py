"""Test fakes for pipelines that call chat models: use them to test your own code offline.

- :class:`FakeUpstream` (``mhsafety.testing.upstream``): an OpenAI-compatible chat server on
  127.0.0.1 (port 0 by default) that streams, for the gateway's tests and your own;
  ``python -m mhsafety.testing.upstream`` runs it from a shell.

Product code never imports this package; tests and benchmarks do.
"""

from typing import Any

__all__ = ["FakeUpstream", "UpstreamFault"]
_HOMES = {"FakeUpstream": "upstream", "UpstreamFault": "upstream"}


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `python -m mhsafety.testing.upstream` does not find its
    # own module already imported by the package.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
