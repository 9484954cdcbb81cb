"""One chat request through the gateway: seeker screening, the upstream, reply screening and
the policy carried out, plain or streamed.

:class:`ChatGateway` is transport-light: :meth:`ChatGateway.complete` takes the parsed body
and answers a :class:`Answer` (status, JSON body or an async byte stream, headers); the
routes in :mod:`.app` only turn that into a response. The reply's screening goes through the
service's :class:`~mhsafety.guard.service.Screener`, so a gateway request and a ``/v1/check``
call meet the same tiers, batchers and deadline.

The ``mhsafety`` object (top level of the JSON body; on a stream, of the final chunk)::

    {"decision": "unsafe", "category": "Toxic Language", "node_path": [...], "tier": "rules",
     "rule_id": "...", "reason": "...", "action": "block", "fallback": true, "attempts": 1,
     "seeker": {"risk": "none", "tier": null, "rule_id": null, "reason": null,
                "action": "allow"}}

``action`` is what was carried out: ``allow``; ``block`` (the fallback went out);
``regenerate`` (a retry passed, or with ``fallback`` true, none did); ``handover`` (the
hand-over fallback went out and the webhook fired). A seeker at high or imminent risk makes
the action ``handover`` whatever the reply's (the reply goes out with the crisis line).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ...errors import UsageError
from ..fallbacks import Fallbacks, load_fallbacks
from ..results import CheckResult, labelled, unverified
from ..seeker_rules import NO_SEEKER_RULES, load_seeker_rules
from ..sse import (
    DONE,
    MEDIA_TYPE,
    StreamFormatError,
    chunk_error,
    chunk_finish_reason,
    chunk_text,
    encode_event,
    is_usage_chunk,
    iter_chunks,
    make_chunk,
)
from ..streaming import StreamScreen
from ..tiers.seeker import (
    NO_SEEKER_RISK,
    SeekerModelTier,
    SeekerRisk,
    SeekerRulesTier,
    SeekerTier,
    assess_seeker,
)
from ..webhook import WEBHOOK_SECRET_ENV, WebhookSender, handover_event
from .config import GatewayConfig
from .messages import BadRequest, check_body, conversation_id, reply_example, reply_text
from .metrics import GatewayMetrics
from .upstream import Upstream, UpstreamError

ACTION_HEADER = "X-Mhsafety-Action"
ROUTE = "/v1/chat/completions"
STREAM_ROUTE = ROUTE + ":stream"


@dataclass
class Answer:
    """What a route sends: ``body`` is JSON-able, raw bytes, or an async byte stream."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def error_body(message: str, type_: str = "invalid_request_error",
               param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which the ``openai`` SDK reads into its exception."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def allowed(result: CheckResult) -> bool:
    return result.action == "allow"


def _passthrough(response: Any) -> Answer:
    media = response.headers.get("content-type", "application/json").split(";")[0]
    return Answer(response.status_code, response.content, {}, media)


@dataclass
class Outcome:
    """How the reply ended: the text that goes out, the last screening, what was done."""

    text: str
    result: CheckResult
    action: str
    fallback: bool = False
    attempts: int = 1


class ChatGateway:
    """The gateway's state: upstream client, seeker tiers, fallbacks, webhook, metrics."""

    def __init__(self, cfg: GatewayConfig, screener: Any, policy: Any, rules: Any,
                 metrics: GatewayMetrics, *,
                 seeker_model: SeekerModelTier | None = None) -> None:
        self.cfg, self.screener, self.policy, self.rules = cfg, screener, policy, rules
        self.metrics = metrics
        self.fallbacks: Fallbacks = load_fallbacks(cfg.fallbacks_file)
        seeker_rules = (load_seeker_rules(cfg.seeker_rules_file) if cfg.seeker_rules
                        else NO_SEEKER_RULES)
        self.seeker_tiers: list[SeekerTier] = []
        if len(seeker_rules):
            self.seeker_tiers.append(SeekerRulesTier(seeker_rules))
        self._seeker_client: Any = None
        if seeker_model is None and cfg.seeker_model is not None:
            seeker_model = self._seeker_model_tier()
        if seeker_model is not None:
            self.seeker_tiers.append(seeker_model)
        self.upstream: Upstream | None = None
        self.webhook: WebhookSender | None = None
        self.in_flight = 0
        secret = os.environ.get(WEBHOOK_SECRET_ENV)
        self.id_key = secret.encode() if secret else None
        if cfg.webhook_url and not secret:
            raise UsageError(f"webhook_url needs a signing secret: set ${WEBHOOK_SECRET_ENV}")

    def _seeker_model_tier(self) -> SeekerModelTier:
        """The LLM seeker tier over the judge's chat client (its retries and request
        shapes; a short budget: the rules' level stands when it is late)."""
        from ...judge import ChatClient, JudgeSettings
        from ...judge.client import Answer as ChatAnswer

        cfg = self.cfg
        settings = JudgeSettings(model=cfg.seeker_model or "",
                                 base_url=cfg.seeker_model_url or cfg.upstream,
                                 api_key_env=cfg.seeker_model_key_env, temperature=0.0,
                                 max_tokens=60, timeout=cfg.seeker_model_timeout_s,
                                 max_attempts=2, backoff_base=0.2)
        self._seeker_client = ChatClient(settings)

        async def complete(messages: list[dict[str, str]]) -> str:
            answer = await asyncio.wait_for(self._seeker_client.send(messages),
                                            cfg.seeker_model_timeout_s)
            if not isinstance(answer, ChatAnswer):
                raise RuntimeError(answer.reason)  # noqa: TRY004 - a failed request, not a type
            return answer.content

        return SeekerModelTier(complete)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self.upstream = Upstream(self.cfg, self.cfg.max_concurrent)
        if self.cfg.webhook_url:
            self.webhook = WebhookSender(
                self.cfg.webhook_url, settings=self.cfg.webhook_settings,
                on_failure=lambda reason: self.metrics.webhook_failures.labels(reason).inc())
            await self.webhook.start()

    async def stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.close(timeout=self.cfg.webhook_settings.timeout_s)
        if self.upstream is not None:
            await self.upstream.aclose()
        if self._seeker_client is not None:
            await self._seeker_client.aclose()

    async def readiness(self) -> tuple[bool, str | None]:
        """The upstream answers ``GET /models`` with 200."""
        assert self.upstream is not None
        try:
            response = await self.upstream.get("/models", timeout=5.0)
        except UpstreamError as exc:
            return False, f"upstream: {exc}"
        if response.status_code != 200:
            return False, f"upstream: GET /models answered HTTP {response.status_code}"
        return True, None

    # ------------------------------------------------------------------ pieces
    async def screen_reply(self, messages: list[dict[str, Any]], text: str, route: str,
                           request_id: str) -> CheckResult:
        started = time.perf_counter()
        try:
            example = reply_example(messages, text)
        except UsageError as exc:  # nothing in the reply: never safe
            result = unverified(f"empty reply: {exc}", 0.5, tier="input", policy=self.policy)
        else:
            (result,) = await self.screener.screen([example], None, request_id)
        self.metrics.screening.labels(route, "reply").observe(time.perf_counter() - started)
        return result

    async def assess_seeker(self, messages: list[dict[str, Any]], route: str) -> SeekerRisk:
        if not self.seeker_tiers:
            return NO_SEEKER_RISK
        started = time.perf_counter()
        risk = await assess_seeker(self.seeker_tiers, messages)
        self.metrics.screening.labels(route, "seeker").observe(time.perf_counter() - started)
        self.metrics.seeker_risk.labels(route, risk.level).inc()
        return risk

    def seeker_hands_over(self, risk: SeekerRisk) -> bool:
        return risk.at_risk and self.cfg.seeker_action == "handover"

    async def regenerate(self, body: dict[str, Any], messages: list[dict[str, Any]],
                         first: CheckResult, locale: str, route: str,
                         request_id: str) -> Outcome:
        """Ask again with a system note naming what was wrong, screening each try, up to
        ``regenerate_attempts`` times; then the block fallback."""
        result, attempts = first, 1
        assert self.upstream is not None
        while result.action == "regenerate" and attempts <= self.cfg.regenerate_attempts:
            note = self.fallbacks.regenerate_note(
                result.label if result.label is not None else None, locale)
            retry = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            retry["messages"] = [*messages, {"role": "system", "content": note}]
            self.metrics.regenerations.labels(route).inc()
            try:
                response = await self._timed_post(retry, route)
            except UpstreamError:
                break
            text = reply_text(response.json()) if response.status_code == 200 else None
            attempts += 1
            if text is None:
                break
            result = await self.screen_reply(messages, text, route, request_id)
            if allowed(result):
                return Outcome(text, result, "regenerate", False, attempts)
        if result.action in ("block", "handover"):
            return self._fallback(result, result.action, locale, attempts)
        return Outcome(self.fallbacks.block(locale), result, "regenerate", True, attempts)

    def _fallback(self, result: CheckResult, action: str, locale: str,
                  attempts: int = 1) -> Outcome:
        text = self.fallbacks.handover(locale) if action == "handover" \
            else self.fallbacks.block(locale)
        return Outcome(text, result, action, True, attempts)

    async def carry_out(self, body: dict[str, Any], messages: list[dict[str, Any]],
                        text: str, result: CheckResult, locale: str, route: str,
                        request_id: str) -> Outcome:
        """The policy's action for a screened reply."""
        if allowed(result):
            return Outcome(text, result, "allow")
        if result.action == "regenerate":
            return await self.regenerate(body, messages, result, locale, route, request_id)
        return self._fallback(result, result.action or "block", locale)

    def finish(self, outcome: Outcome, risk: SeekerRisk, conv_id: str, locale: str,
               route: str) -> tuple[str, dict[str, Any]]:
        """Crisis line, webhook and metrics; the text that goes out and the mhsafety object."""
        text = outcome.text
        seeker_action = "allow"
        causes = []
        if outcome.action == "handover":
            causes.append("reply")
        if self.seeker_hands_over(risk):
            seeker_action = "handover"
            causes.append("seeker")
            text = self.fallbacks.with_crisis_line(text, locale)
        action = "handover" if causes else outcome.action
        if causes:
            self._hand_over(outcome.result, risk, conv_id, "reply" in causes)
        for cause in causes:
            self.metrics.handovers.labels(route, cause).inc()
        self.metrics.actions.labels(route, action).inc()
        r = outcome.result
        obj = {"decision": r.decision, "category": r.label_name, "node_path": r.path,
               "tier": r.tier, "rule_id": r.rule_id,
               # A rule's "why" quotes the matched words: the withheld reply stays withheld.
               "reason": f"rule {r.rule_id} matched" if r.rule_id else (r.reason or r.why),
               "action": action, "reply_action": outcome.action, "fallback": outcome.fallback,
               "attempts": outcome.attempts,
               "seeker": {**risk.to_dict(), "action": seeker_action}}
        return text, obj

    def _hand_over(self, result: CheckResult, risk: SeekerRisk, conv_id: str,
                   reply_cause: bool) -> None:
        if self.webhook is None:
            return
        category = None
        if reply_cause:
            category = result.label_name or ("unverified" if not result.verified else None)
        try:
            event = handover_event(
                conv_id, category=category,
                risk_level=risk.level if risk.at_risk else None,
                tier=result.tier if reply_cause else risk.tier,
                rule_id=result.rule_id if reply_cause else risk.rule_id)
        except UsageError:
            self.metrics.webhook_failures.labels("error").inc()
            return
        self.webhook.submit(event)

    async def _timed_post(self, body: dict[str, Any], route: str) -> Any:
        assert self.upstream is not None
        started = time.perf_counter()
        status = "error"
        try:
            response = await self.upstream.post(body)
            status = str(response.status_code)
            return response
        finally:
            self.metrics.upstream.labels(route, status).observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ a request
    async def complete(self, raw: bytes, conversation_header: str | None,
                       request_id: str) -> Answer:
        """One ``POST /v1/chat/completions``: plain or streamed, screened, policy carried out."""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.metrics.rejected.labels(ROUTE, "bad_body").inc()
            return Answer(400, error_body("the request body is not valid JSON"))
        try:
            messages = check_body(body)
        except BadRequest as exc:
            self.metrics.rejected.labels(ROUTE, "bad_body").inc()
            return Answer(400, error_body(str(exc), param=exc.param))
        stream = bool(body.get("stream"))
        route = STREAM_ROUTE if stream else ROUTE
        risk = await self.assess_seeker(messages, route)
        conv_id = conversation_id(body, conversation_header, self.id_key)
        locale = self.fallbacks.locale_for(messages)
        if stream:
            return await self._stream(body, messages, risk, conv_id, locale, request_id)
        try:
            response = await self._timed_post(body, route)
        except UpstreamError as exc:
            return Answer(exc.status, error_body(str(exc), "upstream_error"))
        if response.status_code != 200:
            return _passthrough(response)
        try:
            completion = response.json()
        except ValueError:
            return Answer(502, error_body("the upstream's answer is not JSON", "upstream_error"))
        text = reply_text(completion)
        if text is None:
            return Answer(502, error_body("the upstream's answer has no message content",
                                          "upstream_error"))
        result = await self.screen_reply(messages, text, route, request_id)
        outcome = await self.carry_out(body, messages, text, result, locale, route, request_id)
        out_text, obj = self.finish(outcome, risk, conv_id, locale, route)
        completion["choices"][0]["message"]["content"] = out_text
        if out_text != text:
            completion["choices"][0]["finish_reason"] = "stop"
        completion["mhsafety"] = obj
        return Answer(200, completion, {ACTION_HEADER: obj["action"]})

    # ------------------------------------------------------------------ streaming
    async def _stream(self, body: dict[str, Any], messages: list[dict[str, Any]],
                      risk: SeekerRisk, conv_id: str, locale: str, request_id: str) -> Answer:
        assert self.upstream is not None
        started = time.perf_counter()
        status = "error"
        try:
            response = await self.upstream.open_stream(body)
            status = str(response.status_code)
        except UpstreamError as exc:
            return Answer(exc.status, error_body(str(exc), "upstream_error"))
        finally:
            self.metrics.upstream.labels(STREAM_ROUTE, status).observe(
                time.perf_counter() - started)
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            return _passthrough(response)
        events = self._events(response, body, messages, risk, conv_id, locale, request_id)
        return Answer(200, events, {"Cache-Control": "no-cache"}, MEDIA_TYPE)

    async def _events(self, response: Any, body: dict[str, Any],
                      messages: list[dict[str, Any]], risk: SeekerRisk, conv_id: str,
                      locale: str, request_id: str) -> AsyncIterator[bytes]:
        route = STREAM_ROUTE
        rules = self.rules

        def rule_check(text: str) -> CheckResult | None:
            hit = rules.match(text)
            if hit is None:
                return None
            return labelled(hit.label, None, 0.5, None, tier="rules", rule_id=hit.rule.id,
                            why=f"rule {hit.rule.id} matched", policy=self.policy)

        async def model_check(text: str) -> CheckResult:
            return await self.screen_reply(messages, text, route, request_id)

        screen = StreamScreen(rules=rule_check if len(rules) else None, window=model_check,
                              final=model_check, settings=self.cfg.stream_settings,
                              blocks=lambda r: isinstance(r, CheckResult) and not allowed(r))
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "model": body.get("model") or "",
                "created": int(time.time())}
        finish_reason, usage, broken = "stop", None, None
        first_in: float | None = None
        first_out = False
        role_sent = False
        try:
            async for chunk in iter_chunks(response.aiter_bytes()):
                if chunk_error(chunk) is not None:
                    broken = "the upstream sent an error during the stream"
                    break
                if not role_sent and isinstance(chunk.get("id"), str):
                    meta.update(id=chunk["id"], model=chunk.get("model", meta["model"]),
                                created=chunk.get("created", meta["created"]))
                if not role_sent:
                    role_sent = True
                    yield encode_event(make_chunk(**meta, role="assistant", content=""))
                if is_usage_chunk(chunk):
                    usage = chunk["usage"]
                    continue
                finish_reason = chunk_finish_reason(chunk) or finish_reason
                piece = chunk_text(chunk)
                if not piece:
                    continue
                if first_in is None:
                    first_in = time.perf_counter()
                released = await screen.feed(piece)
                if released:
                    if not first_out:
                        first_out = True
                        self.metrics.holdback.labels(route).observe(
                            time.perf_counter() - first_in)
                    yield encode_event(make_chunk(**meta, content=released))
                if screen.verdict is not None:
                    break
        except (StreamFormatError, self.upstream.httpx.HTTPError) as exc:  # type: ignore[union-attr]
            broken = f"the upstream stream broke ({type(exc).__name__})"
        finally:
            await response.aclose()
        if not role_sent:
            yield encode_event(make_chunk(**meta, role="assistant", content=""))
        released_chars = screen.released
        if broken is None:
            tail, verdict = await screen.finish()
            result, released_chars = verdict.result, verdict.released
            if not verdict.blocked:
                if tail:
                    if not first_out and first_in is not None:
                        self.metrics.holdback.labels(route).observe(
                            time.perf_counter() - first_in)
                    yield encode_event(make_chunk(**meta, content=tail))
                outcome = Outcome(screen.text, result, "allow")
            else:
                outcome = await self.carry_out(body, messages, screen.text, result, locale,
                                               route, request_id)
        else:
            result = unverified(broken, 0.5, tier="upstream", policy=self.policy)
            outcome = await self.carry_out(body, messages, screen.text, result, locale, route,
                                           request_id)
        out_text, obj = self.finish(outcome, risk, conv_id, locale, route)
        replaced = outcome.action != "allow"
        obj["stream"] = {"hold_back": self.cfg.hold_back,
                         "released_before_decision": released_chars if replaced else None}
        if replaced:  # the fallback or the regenerated reply, after what already went out
            extra = ("\n\n" if released_chars else "") + out_text
        elif out_text != outcome.text:  # the crisis line
            extra = out_text[len(outcome.text.rstrip()):]
        else:
            extra = ""
        if extra:
            yield encode_event(make_chunk(**meta, content=extra))
        yield encode_event(make_chunk(**meta, finish_reason=finish_reason, mhsafety=obj))
        if usage is not None:
            yield encode_event(make_chunk(**meta, usage=usage, with_choice=False))
        yield encode_event(DONE)


async def drain(events: AsyncIterator[bytes]) -> bytes:
    """A whole stream as bytes."""
    return b"".join([e async for e in events])
