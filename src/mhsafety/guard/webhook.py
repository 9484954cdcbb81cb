"""The hand-over webhook: a signed POST telling a team that a person should follow up.

When the policy hands a conversation over (a reply category whose action is ``handover``, or a
seeker at high or imminent risk), the gateway calls :meth:`WebhookSender.submit`, which queues
the event and returns at once: the reply never waits for the webhook. A background task POSTs
each event as JSON:

    {"event": "handover", "conversation_id": "...", "action": "handover",
     "category": "Unauthorized Preachment", "risk_level": "high", "tier": "seeker-rules",
     "rule_id": "zh-ideation", "time": "2026-12-04T21:50:00Z"}

**No dialogue text**, ever: the body holds ids, labels and a time only, and nothing here logs
the body. Each POST is signed: ``X-Mhsafety-Timestamp`` (Unix seconds) and
``X-Mhsafety-Signature: sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` under the
secret in ``$MHSAFETY_WEBHOOK_SECRET`` (never a command-line argument). The receiver checks
both with :func:`verify_signature`, which refuses a timestamp older than its tolerance (a
replayed request). Connection errors, timeouts, 5xx and 429 are retried with exponential
backoff and full jitter (a 429's ``Retry-After`` is honoured, capped); any other answer is
final. A delivery that gives up, an event refused because the bounded queue is full, or an
unexpected error is counted through ``on_failure(reason)`` (reasons: ``gave_up``,
``rejected``, ``queue_full``, ``error``, and ``dropped`` for events still unsent when the
sender is closed) for the gateway's metrics, and never raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError, missing_extra
from ..settings import at_least, check_value, positive, setting
from ..taxonomy import category as taxonomy_category
from .policy import ACTIONS, UNVERIFIED
from .seeker_rules import RISK_LEVELS

WEBHOOK_SECRET_ENV = "MHSAFETY_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Mhsafety-Signature"
TIMESTAMP_HEADER = "X-Mhsafety-Timestamp"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_S = 300
MAX_CONVERSATION_ID_CHARS = 200

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- signing

def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    mac = hmac.new(_key(secret), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(secret: str | bytes, body: bytes, timestamp: str | None,
                     signature: str | None, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """Whether a received request is ours and recent (for receivers, and our tests)."""
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# ---------------------------------------------------------------------- the event

@dataclass(frozen=True)
class HandoverEvent:
    """What the webhook sends: ids, labels and a time; never dialogue text."""

    conversation_id: str
    action: str
    time: str
    category: str | None = None
    risk_level: str | None = None
    tier: str | None = None
    rule_id: str | None = None
    event: str = "handover"

    def to_body(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode()


def _short_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_CONVERSATION_ID_CHARS or \
            not value.isprintable():
        raise UsageError(f"{name} must be a printable string of 1 to "
                         f"{MAX_CONVERSATION_ID_CHARS} characters")
    return value


def handover_event(conversation_id: str, *, action: str = "handover",
                   category: str | int | None = None, risk_level: str | None = None,
                   tier: str | None = None, rule_id: str | None = None,
                   now: datetime | None = None) -> HandoverEvent:
    """A checked event: ``category`` a taxonomy label (name or id) or ``unverified``."""
    if action not in ACTIONS:
        raise UsageError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    name = None
    if category is not None:
        if category == UNVERIFIED:
            name = UNVERIFIED
        else:
            try:
                name = taxonomy_category(category).name
            except (TypeError, ValueError):
                raise UsageError(f"category must be a label of the taxonomy or "
                                 f"'{UNVERIFIED}', got {category!r}") from None
    if risk_level is not None and risk_level not in RISK_LEVELS:
        raise UsageError(f"risk_level must be one of {', '.join(RISK_LEVELS)}, "
                         f"got {risk_level!r}")
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return HandoverEvent(
        _short_id(conversation_id, "conversation_id"), action,
        stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), name, risk_level,
        None if tier is None else _short_id(tier, "tier"),
        None if rule_id is None else _short_id(rule_id, "rule_id"))


# ---------------------------------------------------------------------- sending

@dataclass(frozen=True)
class WebhookSettings:
    """Delivery of hand-over events."""

    max_attempts: int = setting(5, "Tries per event (the first and the retries).",
                                check=positive)
    backoff_s: float = setting(0.5, "First retry's delay ceiling in seconds; doubled per "
                                    "retry, with full jitter.", check=positive)
    backoff_max_s: float = setting(30.0, "Largest delay between tries, in seconds "
                                         "(Retry-After included).", check=positive)
    timeout_s: float = setting(5.0, "Seconds for one POST (connect, send, answer).",
                               check=positive)
    queue_size: int = setting(1000, "Events waiting to be sent at most; more are dropped "
                                    "and counted as failures.", check=at_least(1))

    def __post_init__(self) -> None:
        for name in ("max_attempts", "backoff_s", "backoff_max_s", "timeout_s", "queue_size"):
            check_value(type(self), name, getattr(self, name), "webhook settings")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class WebhookSender:
    """Queue hand-over events and POST them, signed, in the background.

    Use inside a running event loop: ``async with WebhookSender(url) as sender:
    sender.submit(event)``, or :meth:`start` / :meth:`close`. ``secret`` defaults to
    ``$MHSAFETY_WEBHOOK_SECRET``; ``client`` to an ``httpx.AsyncClient`` the sender owns.
    """

    def __init__(self, url: str, *, secret: str | bytes | None = None,
                 settings: WebhookSettings | None = None, client: Any = None,
                 on_failure: Callable[[str], None] | None = None,
                 on_delivered: Callable[[], None] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"url must be an http:// or https:// URL, got {url!r}")
        if secret is None:
            secret = os.environ.get(WEBHOOK_SECRET_ENV, "")
        if not secret:
            raise UsageError(f"the hand-over webhook needs a signing secret: set "
                             f"${WEBHOOK_SECRET_ENV}")
        self.url, self.host = url, parts.hostname
        self.settings = settings or WebhookSettings()
        self._secret = _key(secret)
        self._client, self._own_client = client, client is None
        self._on_failure, self._on_delivered = on_failure, on_delivered
        self._sleep, self._rng = sleep, rng
        self._queue: asyncio.Queue[HandoverEvent] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0

    # -- life cycle
    async def start(self) -> None:
        if self._worker is not None:
            return
        if self._client is None:
            try:
                import httpx
            except ModuleNotFoundError:
                raise missing_extra("httpx", "serve") from None
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s,
                                             follow_redirects=False)
        self._queue = asyncio.Queue(self.settings.queue_size)
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self, timeout: float | None = None) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop."""
        if self._worker is None:
            return
        if self._queue is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except asyncio.TimeoutError:
                pass
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        self._worker = None
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait()
            self._failed("dropped")
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> WebhookSender:  # noqa: PYI034
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(timeout=self.settings.timeout_s)

    @property
    def pending(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    # -- sending
    def submit(self, event: HandoverEvent) -> bool:
        """Queue ``event`` without waiting; False (and a ``queue_full`` failure) when full."""
        if self._queue is None:
            raise RuntimeError("start the webhook sender (await sender.start()) before "
                               "submitting events")
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._failed("queue_full")
            return False
        return True

    async def deliver(self, event: HandoverEvent) -> bool:
        """POST one event with retries; True when the receiver accepted it (2xx)."""
        if self._client is None:
            raise RuntimeError("start the webhook sender before delivering events")
        import httpx

        body = event.to_body()
        last = ""
        for attempt in range(self.settings.max_attempts):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                       SIGNATURE_HEADER: sign(self._secret, stamp, body)}
            wait_at_least = None
            try:
                response = await self._client.post(self.url, content=body, headers=headers,
                                                   timeout=self.settings.timeout_s)
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    self._call(self._on_delivered)
                    return True
                if response.status_code != 429 and response.status_code < 500:
                    log.warning("hand-over webhook to %s refused with HTTP %d; not retried",
                                self.host, response.status_code)
                    self._failed("rejected")
                    return False
                last = f"HTTP {response.status_code}"
                wait_at_least = _retry_after(response.headers.get("Retry-After"))
            if attempt + 1 < self.settings.max_attempts:
                await self._sleep(self._delay(attempt, wait_at_least))
        log.warning("hand-over webhook to %s failed after %d tries: %s", self.host,
                    self.settings.max_attempts, last)
        self._failed("gave_up")
        return False

    def _delay(self, attempt: int, at_least: float | None) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_s * 2 ** attempt)
        delay = self._rng() * ceiling
        if at_least is not None:
            delay = max(delay, min(at_least, self.settings.backoff_max_s))
        return delay

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self.deliver(event)
            except asyncio.CancelledError:
                self._failed("dropped")  # closed while this event was still being sent
                raise
            except Exception as exc:  # noqa: BLE001 - the reply path never sees a webhook problem
                log.warning("hand-over webhook to %s: unexpected %s", self.host,
                            type(exc).__name__)
                self._failed("error")
            finally:
                self._queue.task_done()

    def _failed(self, reason: str) -> None:
        self.failed += 1
        self._call(self._on_failure, reason)

    @staticmethod
    def _call(callback: Callable[..., Any] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a metrics callback's bug must not stop deliveries
            log.exception("hand-over webhook callback failed")
