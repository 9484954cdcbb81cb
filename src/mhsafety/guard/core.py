"""The guard: screen a counselling chatbot's reply before it goes out.

``Guard.load(checkpoint).check(context, response)`` gives a :class:`CheckResult`. A guard is
an ordered list of tiers (:mod:`.tiers`), each speaking one ``screen()`` protocol; a reply
goes through them until one decides, and the result says which one did and why. The default
list, as ``mhsafety check`` and ``serve`` build it from a :class:`~.config.GuardConfig`:

1. **rules** (:mod:`.tiers.rules`): explicit unsafe replies (abuse, encouraging self-harm,
   dosing medication, claiming to be a human counsellor) are decided before any model runs.
2. **model** (:mod:`.tiers.model`): the checkpoint's P(safe); a reply is flagged unsafe when
   P(safe) < threshold.
3. **escalation** (:mod:`.tiers.escalate`, optional cascade): when the model's P(safe) falls
   inside a band ``[low, high]``, or it could not answer, a second checkpoint decides.

Every result also carries the node path of the sequential framework, the policy's action
(:mod:`.policy`) and, where the backend gives one, a short rationale.

Fail closed: a reply with nothing in it (:func:`~.items.empty_reply`) is "unverified" before
any tier; when a model raises, abstains, returns malformed probabilities or runs past a
timeout, or no tier decides, the result is "unverified" with the reason and ``safe`` is
False. A reply is never reported safe without a valid answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..classifiers.base import Classifier
from ..data import Example
from ..errors import UsageError
from .config import GuardConfig
from .items import EMPTY_REPLY, ContextLike, ItemLike, empty_reply, examples_of, make_example
from .policy import DEFAULT_POLICY, Policy
from .results import DEFAULT_THRESHOLD, CheckResult, unverified, validate_threshold
from .rules import NO_RULES, RuleSet, default_rules
from .tiers import ModelTier, Outcome, Pass, Pending, RulesTier, Tier, cascade, check_cascade

NO_TIER_DECIDED = "no tier decided this reply"


@dataclass
class Screening:
    """One batch on its way through the tiers: results so far, and who is still pending."""

    results: list[CheckResult | None]
    pending: dict[int, Pending] = field(default_factory=dict)

    def waiting(self) -> tuple[list[int], list[Pending]]:
        """The indices and items still undecided, in input order."""
        order = sorted(self.pending)
        return order, [self.pending[i] for i in order]

    def record(self, indices: Sequence[int], outcomes: Sequence[Outcome]) -> None:
        """A tier's outcomes for ``indices``: results are kept, passes go on."""
        if len(outcomes) != len(indices):
            raise RuntimeError(f"a tier answered {len(outcomes)} outcomes for "
                               f"{len(indices)} items")
        for i, outcome in zip(indices, outcomes):
            if isinstance(outcome, Pass):
                item = self.pending[i]
                self.pending[i] = replace(item, passed=item.passed + (outcome.why,))
            else:
                self.results[i] = outcome
                del self.pending[i]

    def finish(self, policy: Policy) -> list[CheckResult]:
        """Every result; a reply no tier decided is unverified (fail closed)."""
        for i, item in self.pending.items():
            shown = item.shown if item.threshold is None else item.threshold
            self.results[i] = unverified(NO_TIER_DECIDED, shown, item.example.id,
                                         tier="guard", policy=policy)
        self.pending.clear()
        return list(self.results)  # type: ignore[arg-type]


class Guard:
    """An ordered list of tiers and the policy their results answer with.

    Build one from a :class:`GuardConfig` (:meth:`from_config`), from a checkpoint folder
    (:meth:`load`), around a classifier (:meth:`around`), or from any tiers (``Guard(tiers)``).
    """

    def __init__(self, tiers: Sequence[Tier], policy: Policy | None = None) -> None:
        if isinstance(tiers, (Classifier, ModelTier)):
            raise TypeError("Guard(tiers) takes a list of tiers; wrap one classifier with "
                            "Guard.around(classifier)")
        if not tiers:
            raise UsageError("a guard needs at least one tier")
        self.tiers: list[Tier] = list(tiers)
        self.policy = policy or DEFAULT_POLICY

    # ------------------------------------------------------------------ building

    @classmethod
    def around(cls, model: Classifier | ModelTier, threshold: float = DEFAULT_THRESHOLD,
               timeout: float | None = None, *, rules: RuleSet | None = None,
               policy: Policy | None = None, escalate_to: ModelTier | None = None,
               band: Sequence[float] | str | None = None) -> Guard:
        """The default tiers around a loaded model: rules (default: the shipped ones;
        ``NO_RULES`` turns the tier off), the model, and a cascade's second tier."""
        check_cascade(escalate_to, band)
        policy = policy or DEFAULT_POLICY
        first = model if isinstance(model, ModelTier) else ModelTier(model, threshold, timeout)
        first.policy = policy
        rule_set = default_rules() if rules is None else rules
        tiers: list[Any] = [RulesTier(rule_set, policy)] if len(rule_set) else []
        if escalate_to is not None:
            escalate_to.policy = policy
            tiers += cascade(first, escalate_to, band)  # type: ignore[arg-type]
        else:
            tiers.append(first)
        return cls(tiers, policy)

    @classmethod
    def load(cls, checkpoint_dir: str | os.PathLike[str], threshold: float | None = None,
             timeout: float | None = None, *, rules: RuleSet | None = None,
             policy: Policy | None = None,
             escalate_to: str | os.PathLike[str] | ModelTier | None = None,
             band: Sequence[float] | str | None = None,
             escalate_threshold: float | None = None, runtime: str | None = None) -> Guard:
        """Load any checkpoint kind (and the cascade's second, if given)."""
        check_cascade(escalate_to, band)
        second = escalate_to
        if escalate_to is not None and not isinstance(escalate_to, ModelTier):
            second = ModelTier.load(escalate_to, escalate_threshold, timeout, runtime=runtime,
                                    name="escalation")
        first = ModelTier.load(checkpoint_dir, threshold, timeout, runtime=runtime)
        return cls.around(first, rules=rules, policy=policy,
                          escalate_to=second, band=band)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: GuardConfig, timeout: float | None = None) -> Guard:
        """The guard ``config`` describes (files read and checkpoints loaded now, so a bad
        one fails here, once). ``timeout``: seconds a model call may take before its
        results become unverified (None: no limit; the service keeps its own deadline)."""
        from .policy import load_policy
        from .rules import load_rules

        rule_set = (load_rules(config.rules_file, use_defaults=config.default_rules)
                    if config.rules else NO_RULES)
        return cls.load(config.checkpoint, config.threshold, timeout, rules=rule_set,
                        policy=load_policy(config.policy), escalate_to=config.escalate_to,
                        band=config.band, escalate_threshold=config.escalate_threshold,
                        runtime=config.runtime)

    # ------------------------------------------------------------------ what it is

    def model_tiers(self) -> list[ModelTier]:
        """Every tier that holds a checkpoint (the model, a cascade's second)."""
        out = []
        for tier in self.tiers:
            model = tier if isinstance(tier, ModelTier) else getattr(tier, "model", None)
            if isinstance(model, ModelTier):
                out.append(model)
        return out

    @property
    def model(self) -> ModelTier:
        """The first model tier (the checkpoint the guard was loaded from)."""
        models = self.model_tiers()
        if not models:
            raise UsageError("this guard has no model tier")
        return models[0]

    @property
    def classifier(self) -> Classifier:
        return self.model.classifier

    @property
    def threshold(self) -> float:
        models = self.model_tiers()
        return models[0].threshold if models else DEFAULT_THRESHOLD

    @property
    def kind(self) -> str:
        """The first model's kind ("none" for a guard of rule-like tiers only)."""
        models = self.model_tiers()
        return models[0].kind if models else "none"

    @property
    def manifest(self) -> dict[str, Any]:
        models = self.model_tiers()
        return models[0].manifest if models else {}

    @property
    def checkpoint(self) -> str | None:
        models = self.model_tiers()
        return models[0].checkpoint if models else None

    @property
    def rules(self) -> RuleSet:
        for tier in self.tiers:
            if isinstance(tier, RulesTier):
                return tier.rules
        return NO_RULES

    @property
    def escalation(self) -> Tier | None:
        return next((t for t in self.tiers if t.name == "escalation"), None)

    def describe(self) -> dict[str, Any]:
        """What this guard is made of (for /healthz, logs and reports; no text)."""
        second = self.escalation
        band = self.model.band if second is not None else None
        return {"kind": self.kind, "threshold": self.threshold, "rules": len(self.rules),
                "rules_source": self.rules.source, "policy": self.policy.source,
                "tiers": [t.describe() for t in self.tiers],
                "escalation": None if second is None else {
                    **second.describe(), "band": list(band or ())}}

    # ------------------------------------------------------------------ screening

    def begin(self, examples: Sequence[Example], threshold: float | None = None) -> Screening:
        """A screening of ``examples``; replies with nothing in them are decided here
        (unverified), the rest wait for the tiers. ``threshold`` overrides every tier's
        own threshold for this call."""
        override = None if threshold is None else validate_threshold(threshold)
        shown = self.threshold if override is None else override
        screening = Screening([None] * len(examples))
        for i, ex in enumerate(examples):
            if empty_reply(ex.response):
                screening.results[i] = unverified(EMPTY_REPLY, shown, ex.id, tier="input",
                                                  policy=self.policy)
            else:
                screening.pending[i] = Pending(ex, override, shown)
        return screening

    def before_model(self, examples: Sequence[Example]) -> Screening:
        """The screening after every tier before the first model tier (the rule tier):
        what calibration holds fixed while it varies the model's threshold."""
        screening = self.begin(examples)
        first_model = self.model
        for tier in self.tiers:
            if tier is first_model:
                break
            indices, items = screening.waiting()
            if items:
                screening.record(indices, tier.screen(items))
        return screening

    def check(self, context: ContextLike, response: str, id: str | None = None,
              threshold: float | None = None) -> CheckResult:
        """Screen one reply. Bad input (empty text, a wrong type) raises UsageError."""
        return self.check_examples([make_example(context, response, id)], threshold)[0]

    def check_many(self, items: Iterable[ItemLike],
                   threshold: float | None = None) -> list[CheckResult]:
        """Screen many replies; results in input order.

        Items are Examples, mappings with ``context``/``response`` (and optional ``id``), or
        ``(context, response)`` pairs; they are read as the data module reads a file.
        """
        return self.check_examples(examples_of(items), threshold)

    def check_examples(self, examples: Sequence[Example],
                       threshold: float | None = None) -> list[CheckResult]:
        """Screen validated examples through every tier in order; failures give
        "unverified"."""
        screening = self.begin(examples, threshold)
        for tier in self.tiers:
            indices, items = screening.waiting()
            if not items:
                break
            screening.record(indices, tier.screen(items))
        return screening.finish(self.policy)

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()
