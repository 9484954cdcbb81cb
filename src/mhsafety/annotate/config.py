"""Settings of the annotation server: the one home of their defaults, checks and docs.

``mhsafety annotate serve`` derives its options from these fields; kept apart from
:mod:`.app` so the command line can build its options without importing the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, at_least, setting, tcp_port


@dataclass(frozen=True)
class AnnotateServerConfig(Settings):
    host: str = setting("127.0.0.1",
                        "Address to bind; anything but loopback needs --token-env.")
    port: int = setting(8765, "Port (0 picks a free one).", check=tcp_port)
    token_env: str | None = setting(
        None, "Require the shared access token held in this environment variable.",
        metavar="VAR")
    break_every: int = setting(25, "Remind annotators to take a break after this many items.",
                               check=at_least(1))
    max_body: int = setting(64 * 1024, "Largest request body accepted, in bytes.",
                            check=at_least(1))
