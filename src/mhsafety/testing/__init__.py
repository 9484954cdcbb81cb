"""Test fakes for pipelines that call chat models: use them to test your own code offline.

- :class:`MockTransport` (``mhsafety.testing.transport``): an in-process transport shaped like
  httpx's ``MockTransport(handler)``; the handler gets each :class:`Request` and returns a
  :class:`Response` (:func:`chat_response` builds a chat-completions reply). Pass it to
  ``mhsafety.judge.judge_examples(items, settings, transport)`` or a
  ``mhsafety.judge.ChatClient``: no socket, no file.
- :class:`FakeServer` (``mhsafety.testing.fakeserver``): a real OpenAI-compatible HTTP server
  on 127.0.0.1 (port 0 by default) with canned or gold-label answers, a chatbot replaying a
  dataset's responses (``DatasetResponder``), injected faults (429, 5xx, hangs, dropped
  connections, malformed bodies), reasoning models, logprobs and the Batch API; ``python -m
  mhsafety.testing.fakeserver`` runs it from a shell.
- :class:`FakeUpstream` (``mhsafety.testing.upstream``): the model server behind a gateway,
  on 127.0.0.1 (port 0 by default): plain and streamed (``"stream": true``) chat completions,
  ``/v1/models``, a reply function of the messages, HTTP faults (:class:`UpstreamFault`);
  ``python -m mhsafety.testing.upstream`` runs it from a shell.

Product code never imports this package (``tests/test_registry.py`` checks it); tests and
benchmarks do.
"""

from typing import Any

__all__ = ["DatasetResponder", "FakeServer", "FakeUpstream", "GoldResponder", "MockTransport",
           "ReplayResponder", "Request", "Response", "UpstreamFault", "chat_response", "constant"]
_HOMES = {"DatasetResponder": "fakeserver", "FakeServer": "fakeserver",
          "GoldResponder": "fakeserver", "ReplayResponder": "fakeserver", "constant": "fakeserver",
          "MockTransport": "transport", "Request": "transport", "Response": "transport",
          "chat_response": "transport", "FakeUpstream": "upstream",
          "UpstreamFault": "upstream"}


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `python -m mhsafety.testing.fakeserver` does not find
    # its own module already imported by the package.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
