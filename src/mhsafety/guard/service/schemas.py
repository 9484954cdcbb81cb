"""Request and response bodies of the guard service (pydantic; imported by the service only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Length limits are enforced by the service (413 with a message) so they can be configured;
# the schema only states the shapes. Request bodies refuse NaN and Infinity anywhere a number
# is read (422 naming the field), and their error answers never echo a non-finite number.
REQUEST = ConfigDict(extra="forbid", allow_inf_nan=False)


class TurnIn(BaseModel):
    model_config = REQUEST

    role: Literal["seeker", "supporter"]
    text: str


class CheckItem(BaseModel):
    """One reply to screen: the dialogue so far and the chatbot's candidate response."""

    model_config = REQUEST

    id: str | None = Field(None, max_length=200, description="Echoed back in the result.")
    context: str | list[TurnIn] = Field(
        description="The dialogue so far: the upstream string with [seeker]/[supporter] "
                    "markers (plain text is one seeker turn), or a list of turns.")
    response: str = Field(description="The chatbot's candidate reply.")


class CheckRequest(BaseModel):
    """Either one item (``context`` and ``response``) or a batch (``items``)."""

    model_config = REQUEST

    id: str | None = Field(None, max_length=200)
    context: str | list[TurnIn] | None = None
    response: str | None = None
    items: list[CheckItem] | None = Field(None, description="A batch of items.")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Flag a reply unsafe when P(safe) is below this; default: the server's.")

    @model_validator(mode="after")
    def _one_form(self) -> CheckRequest:
        single = [name for name in ("id", "context", "response") if getattr(self, name) is not None]
        if self.items is not None:
            if single:
                raise ValueError("give either 'items' (a batch) or 'context' and 'response' "
                                 f"(one item), not both (also got {', '.join(single)})")
            if not self.items:
                raise ValueError("'items' is empty; give at least one item")
        else:
            missing = [name for name in ("context", "response") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"missing field '{missing[0]}': give 'context' and 'response' "
                                 "for one item, or 'items' for a batch")
        return self

    def as_items(self) -> list[CheckItem]:
        if self.items is not None:
            return self.items
        return [CheckItem(id=self.id, context=self.context, response=self.response)]  # type: ignore[arg-type]


class Node(BaseModel):
    number: int
    title: str


class PathStep(BaseModel):
    node: int
    title: str
    fired: bool = Field(description="Whether this node stopped the walk (decided the label).")
    kind: str | None = Field(None, description="At node 4: the category it decided.")


Action = Literal["allow", "block", "regenerate", "handover"]


class CheckResultOut(BaseModel):
    id: str | None
    decision: Literal["safe", "unsafe", "unverified"]
    safe: bool = Field(description="True only for a verified safe decision.")
    action: Action | None = Field(description="The policy's action for this result.")
    label: int | None
    label_name: str | None
    node: Node | None = Field(description="The framework node that decides the label.")
    path: list[PathStep] | None = Field(description="The walk through the framework's nodes.")
    tier: str = Field(description="Who decided: a tier's name (rules, model, escalation, "
                                  "...) or input (an empty reply, before any tier).")
    why: str | None = Field(description="How the deciding tier decided.")
    rule_id: str | None = Field(description="The rule that decided, for the rule tier.")
    p_safe: float | None
    probabilities: dict[str, float] | None
    model_label: int | None = Field(description="The model's own argmax label.")
    threshold: float
    rationale: str | None = Field(description="The backend's short rationale, if it gives one.")
    reason: str | None = Field(description="Why the result is unverified.")


class CheckResponse(BaseModel):
    request_id: str
    results: list[CheckResultOut]


class DialogueIn(BaseModel):
    """One conversation: turns as a list, or one string with [seeker]/[supporter] markers."""

    model_config = REQUEST

    id: str | None = Field(None, max_length=200)
    turns: str | list[TurnIn]


class CheckDialogueRequest(BaseModel):
    model_config = REQUEST

    conversations: list[DialogueIn] = Field(min_length=1)
    threshold: float | None = Field(None, ge=0.0, le=1.0)


class TurnResultOut(CheckResultOut):
    turn: int = Field(description="Index of the supporter turn in the conversation.")


class AuditSummary(BaseModel):
    screened: int
    decisions: dict[str, int]
    categories: dict[str, int] = Field(description="Unsafe turns per category.")
    actions: dict[str, int]
    rule_hits: dict[str, int]
    escalated: int


class ConversationSummary(AuditSummary):
    flagged_turns: list[int] = Field(description="Supporter turns not verified safe.")


class OverallSummary(AuditSummary):
    conversations: int
    conversations_flagged: int


class ConversationAudit(BaseModel):
    id: str
    turns: int
    results: list[TurnResultOut]
    summary: ConversationSummary


class DialogueAuditResponse(BaseModel):
    request_id: str
    conversations: list[ConversationAudit]
    summary: OverallSummary


class PolicyOut(BaseModel):
    source: str
    actions: dict[str, Action]


class ErrorResponse(BaseModel):
    detail: str | list[dict]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    kind: str
    threshold: float
    detail: str | None = None


class Ready(BaseModel):
    ready: bool
    detail: str | None = None
