"""The guard-model kinds behind the classifier interface, against fake servers that answer in
each family's own format (tests/helpers/guard_fakes.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mhsafety.classifiers.base import BINARY_ONLY
from mhsafety.guardmodels.settings import SETTINGS
from mhsafety.judge.client import FatalAPIError
from mhsafety.records import NOTE_BINARY_ONLY, read_records, write_records
from mhsafety.registry import KINDS, create_classifier, load_classifier
from mhsafety.scoring import runs_of, score_runs
from mhsafety.taxonomy import NUM_LABELS, SAFE_LABEL
from mhsafety.testing import FakeServer, MockTransport, chat_response
from tests.helpers.guard_answers import (
    MALFORMED,
    llamaguard_answer,
    logprobs_for,
    prose_first,
    reasoning_first,
)
from tests.helpers.guard_fakes import GoldGuardResponder

FAMILIES = ("qwen3guard", "llamaguard", "shieldgemma", "wildguard", "policy")
FAST = {"max_attempts": 1, "timeout": 5.0, "concurrency": 8}


@pytest.fixture(scope="module")
def items(test_examples):
    """Every label, a few items each (ids unique)."""
    out = []
    for label in range(NUM_LABELS):
        out += [ex for ex in test_examples if ex.label == label][:4]
    return out


def gold_server(family, items, wrap=None, **settings):
    responder = GoldGuardResponder(items, SETTINGS[family](**settings), wrap)
    return FakeServer(responder).start(), responder


def make(family, url, **config):
    return create_classifier(f"{family}:fake-guard@{url}", **FAST, **config)


def score(records):
    return score_runs({"s": runs_of("s", {"0": records})}).system("s")


def test_every_family_is_a_registered_kind():
    assert set(FAMILIES) <= set(KINDS)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gold_answering_server_scores_100_percent_binary_through_its_kind(
        family, items, tmp_path):
    server, _ = gold_server(family, items)
    try:
        make(family, server.url).save(tmp_path / "ckpt")
        clf = load_classifier(tmp_path / "ckpt")
        assert clf.kind == family and not clf.needs_training
        records = clf.predict_records(items, "guard")
        labels = clf.predict(items)
    finally:
        server.stop()
    path = write_records(tmp_path / "g.preds.jsonl", records)
    metrics = score(read_records(path))  # through the file: the record fields round-trip
    assert metrics.scores["binary_accuracy"].mean == 1.0
    assert metrics.scores["unsafe_recall"].mean == 1.0
    assert metrics.scores["false_alarm_rate"].mean == 0.0
    assert metrics.scores["coverage"].mean == 1.0
    gold_unsafe = [ex.label != SAFE_LABEL for ex in items]
    assert [r.unsafe for r in records] == gold_unsafe
    if family in ("qwen3guard", "wildguard"):
        # General guards: the label is never guessed, and the label view is not defined.
        assert all(r.pred is None and r.error is None for r in records)
        assert all(NOTE_BINARY_ONLY in r.notes for r in records)
        assert "accuracy" not in metrics.scores and "macro_f1" not in metrics.scores
        assert metrics.n_invalid == 0
        assert (labels == -1).all()
    else:
        # Our categories were given (policy, Llama Guard S1-S7, ShieldGemma per policy).
        assert [r.pred for r in records] == [ex.label for ex in items]
        assert metrics.scores["accuracy"].mean == 1.0


def test_policy_round_trips_every_label_and_keeps_the_reasoning(items):
    server, _ = gold_server("policy", items, wrap=lambda a: reasoning_first(a))
    try:
        clf = make("policy", server.url)
        preds = clf.predictions(items)
        records = clf.predict_records(items, "policy")
    finally:
        server.stop()
    assert preds.labels.tolist() == [ex.label for ex in items]
    assert set(preds.labels.tolist()) == set(range(NUM_LABELS))
    assert "seeker's worry" in records[0].meta["reasoning"]
    assert records[0].meta["kind"] == "policy" and records[0].meta["guard_model"] == "fake-guard"


@pytest.mark.parametrize("family", FAMILIES)
def test_malformed_answers_abstain_with_the_parsers_reason(family, items):
    answers = MALFORMED[family]
    state = {"i": 0}

    def handler(request):
        return chat_response(answers[state["i"] % len(answers)][0])

    clf = make(family, "http://127.0.0.1:9/v1")
    calls = 7 if family == "shieldgemma" else 1
    for i, (_, words) in enumerate(answers):
        state["i"] = i
        clf.transport = MockTransport(handler)
        preds = clf.predictions(items[:1])
        assert preds.binary.tolist() == [-1] and np.isnan(preds.probs).all()
        assert words.lower() in preds.reasons[0].lower(), (family, preds.reasons[0])
        assert len(clf.transport.requests) == calls
        records = clf.predict_records(items[:1], "s")
        assert records[0].pred is None and records[0].unsafe is None and records[0].error


@pytest.mark.parametrize("family", ["qwen3guard", "llamaguard", "wildguard"])
def test_reasoning_before_the_answer_is_read_and_prose_before_it_abstains(family, items):
    for wrap, ok in ((reasoning_first, True), (prose_first, False)):
        server, _ = gold_server(family, items[-4:], wrap=wrap)
        try:
            preds = make(family, server.url).predictions(items[-4:])
        finally:
            server.stop()
        if ok:
            assert preds.binary.tolist() == [0, 0, 0, 0]  # the last label is Safe Response
        else:
            assert preds.binary.tolist() == [-1] * 4
            assert all("before the answer" in r for r in preds.reasons)


def test_qwen3guard_answers_are_binary_only_with_refusal_and_categories(items):
    server, _ = gold_server("qwen3guard", items[:4])
    try:
        preds = make("qwen3guard", server.url).predictions(items[:4])
    finally:
        server.stop()
    assert preds.reasons == (BINARY_ONLY,) * 4 and preds.binary.tolist() == [1] * 4
    assert np.isnan(preds.p_unsafe).all()  # Qwen3Guard gives no probability: none is made
    assert preds.meta[0]["refusal"] is False and preds.meta[0]["level"] == "Unsafe"
    assert preds.meta[0]["categories"]


def test_llamaguard_probability_comes_from_the_first_token_logprobs(items):
    def handler(request):
        body = request.json()
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        assert "categories" in body["chat_template_kwargs"]
        response = chat_response(llamaguard_answer(True, ("S3",)))
        data = json.loads(response.content)
        data["choices"][0]["logprobs"] = {"content": logprobs_for(
            "unsafe", {"unsafe": 0.6, "safe": 0.2}, blank_first=True)}
        return type(response)(200, json=data)

    clf = make("llamaguard", "http://127.0.0.1:9/v1")
    clf.transport = MockTransport(handler)
    preds = clf.predictions(items[:1])
    assert preds.p_unsafe[0] == pytest.approx(0.75)
    assert preds.labels.tolist() == [2]  # S3 is our third category
    record = clf.predict_records(items[:1], "s")[0]
    assert record.p_unsafe == pytest.approx(0.75) and record.unsafe is True


def test_shieldgemma_sends_one_policy_per_call_with_its_own_guideline(items):
    server, responder = gold_server("shieldgemma", items[:1])
    try:
        make("shieldgemma", server.url).predictions(items[:1])
    finally:
        server.stop()
    guidelines = [b["chat_template_kwargs"]["guideline"] for b in responder.bodies]
    assert len(set(guidelines)) == 7


def test_a_failed_request_abstains_and_a_wrong_url_stops_at_once(items):
    clf = make("qwen3guard", "http://127.0.0.1:9/v1")
    clf.transport = MockTransport(lambda request: type(chat_response(""))(503, json={}))
    preds = clf.predictions(items[:2])
    assert all(r.startswith("request failed") for r in preds.reasons)
    with pytest.raises(FatalAPIError, match="127.0.0.1:1"):
        make("qwen3guard", "http://127.0.0.1:1/v1").predictions(items[:1])


def test_spec_errors_are_one_sentence():
    from mhsafety.errors import UsageError

    with pytest.raises(UsageError, match="needs a base URL"):
        create_classifier("llamaguard:meta-llama/Llama-Guard-3-8B")
    with pytest.raises(UsageError, match="has no scheme"):
        create_classifier("llamaguard:m@localhost:8000/v1")
    with pytest.raises(UsageError, match="strictness"):
        create_classifier("qwen3guard:m@http://x/v1", strictness="medium")
    clf = create_classifier("qwen3guard:m@http://x/v1").with_settings(strictness="loose")
    assert clf.settings.strictness == "loose" and clf.settings.base_url == "http://x/v1"
