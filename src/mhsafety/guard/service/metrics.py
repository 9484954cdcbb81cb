"""The service's Prometheus metrics (never any text)."""

from __future__ import annotations

from collections.abc import Sequence

from ..results import CheckResult


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (never any text)."""

    ENDPOINTS = ("/v1/check", "/v1/check_dialogue", "/v1/taxonomy", "/v1/policy",
                 "/v1/chat/completions", "/v1/models", "/healthz",
                 "/readyz",
                 "/metrics", "/docs", "/redoc", "/openapi.json")

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ModuleNotFoundError:
            from ...errors import missing_extra

            raise missing_extra("prometheus-client", "serve") from None
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("mhsafety_guard_requests", "HTTP requests answered.",
                                     ["endpoint", "status"], registry=r)
        self.latency = prom.Histogram(
            "mhsafety_guard_request_seconds", "Time from request to answer.", ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.decisions = prom.Counter(
            "mhsafety_guard_decisions", "Screened replies by decision, category and tier.",
            ["decision", "category", "tier"], registry=r)
        self.actions = prom.Counter("mhsafety_guard_actions", "Policy actions returned.",
                                    ["action"], registry=r)
        self.unverified = prom.Counter("mhsafety_guard_unverified",
                                       "Replies that could not be verified, by cause.",
                                       ["cause"], registry=r)
        self.escalations = prom.Counter("mhsafety_guard_escalations",
                                        "Replies decided by the escalation tier.", registry=r)
        self.rule_hits = prom.Counter("mhsafety_guard_rule_hits", "Replies decided by a rule.",
                                      ["rule_id"], registry=r)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in self.ENDPOINTS else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_results(self, results: Sequence[CheckResult]) -> None:
        for r in results:
            self.decisions.labels(r.decision, r.label_name or "none", r.tier).inc()
            self.actions.labels(r.action or "none").inc()
            if r.decision == "unverified":
                # The cause is the reason's fixed prefix ("timeout", "model error", ...).
                self.unverified.labels((r.reason or "unknown").split(":")[0][:40]).inc()
            if r.tier == "escalation":
                self.escalations.inc()
            if r.rule_id:
                self.rule_hits.labels(r.rule_id).inc()

    def render(self) -> bytes:
        return self.prom.generate_latest(self.registry)
