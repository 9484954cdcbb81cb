"""The gateway's Prometheus metrics, in the service's registry (never any text)."""

from __future__ import annotations

from typing import Any

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """Per route (``/v1/chat/completions`` plain or ``:stream``)."""

    def __init__(self, prom: Any, registry: Any) -> None:
        self.upstream = prom.Histogram(
            "mhsafety_gateway_upstream_seconds", "Upstream call time (to the headers for a "
            "stream).", ["route", "status"], buckets=_SLOW, registry=registry)
        self.screening = prom.Histogram(
            "mhsafety_gateway_screening_seconds", "Time spent screening, by stage (seeker "
            "turns, reply).", ["route", "stage"], buckets=_FAST, registry=registry)
        self.holdback = prom.Histogram(
            "mhsafety_gateway_holdback_seconds", "Streams: time from the first reply text "
            "received to the first released.", ["route"], buckets=_FAST, registry=registry)
        self.actions = prom.Counter("mhsafety_gateway_actions", "Actions carried out.",
                                    ["route", "action"], registry=registry)
        self.regenerations = prom.Counter("mhsafety_gateway_regenerations",
                                          "Upstream retries asked for by the policy.",
                                          ["route"], registry=registry)
        self.handovers = prom.Counter("mhsafety_gateway_handovers", "Hand-overs, by cause "
                                      "(reply, seeker).", ["route", "cause"], registry=registry)
        self.webhook_failures = prom.Counter("mhsafety_gateway_webhook_failures",
                                             "Hand-over webhook events not delivered.",
                                             ["reason"], registry=registry)
        self.seeker_risk = prom.Counter("mhsafety_gateway_seeker_risk",
                                        "Requests by the seeker's risk level.",
                                        ["route", "level"], registry=registry)
        self.rejected = prom.Counter("mhsafety_gateway_rejected", "Chat requests refused "
                                     "before the upstream (auth, overload, bad body).",
                                     ["route", "reason"], registry=registry)
