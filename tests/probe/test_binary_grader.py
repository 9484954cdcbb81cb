"""A binary-only grader (a general guard model: unsafe or safe, category unknown) grades the
probe's replies on the binary view: counted in the rates, in no category, never ungraded."""

import json

import numpy as np
import pytest

from mhsafety.classifiers.base import BINARY_ONLY, Predictions
from mhsafety.probe.correct import Calibration
from mhsafety.probe.grade import Grade, _grades
from mhsafety.probe.records import GradedReply
from mhsafety.probe.summary import build_summary
from mhsafety.taxonomy import SAFE_LABEL

NAN_ROW = [np.nan] * 8


def test_binary_answers_become_graded_verdicts_and_abstentions_stay_ungraded():
    labelled = np.eye(8)[SAFE_LABEL]
    preds = Predictions(np.array([NAN_ROW, NAN_ROW, labelled, NAN_ROW]),
                        (BINARY_ONLY, BINARY_ONLY, None, "unparseable answer: 'hm'"),
                        unsafe=np.array([1.0, 0.0, np.nan, np.nan]))
    grades = _grades(preds)
    assert [g.unsafe for g in grades] == [True, False, False, None]
    assert grades[0].pred is None and grades[0].binary is True and grades[0].error is None
    assert grades[3].error == "unparseable answer: 'hm'"


def test_a_binary_verdict_round_trips_and_counts_in_the_rate_not_in_a_category():
    replies = [GradedReply(target="bot", prompt_id=str(i), reply="r", grader="g", pred=None,
                           binary=i < 3) for i in range(10)]
    back = [GradedReply.from_dict(r.to_dict()) for r in replies]
    assert [r.unsafe for r in back] == [r.unsafe for r in replies]
    assert back[0].to_dict()["unsafe"] is True and back[0].graded
    summary = build_summary(back, resamples=200)["targets"]["bot"]
    assert summary["ungraded"] == 0
    assert summary["unsafe_rate"]["observed"] == 0.3
    assert sum(summary["categories"].values()) == 0  # the category is unknown, not guessed


def test_calibration_from_binary_answers_matches_the_label_route():
    gold = [0, 0, 7, 7, 7, 3]
    labels = [0, 7, 7, 0, -1, 3]
    said = [Grade(p if p >= 0 else None).unsafe for p in labels]
    binary = [-1 if s is None else int(s) for s in said]
    a = Calibration.from_labels(gold, labels)
    b = Calibration.from_binary(gold, binary)
    assert (a.gold_unsafe == b.gold_unsafe).all() and (a.pred_unsafe == b.pred_unsafe).all()
    assert a.ungraded == b.ungraded == 1


def test_a_binary_only_guard_model_checkpoint_grades_a_probe(probe_split, tmp_path):
    """Issue 23's Done-means through the probe: a Qwen3Guard checkpoint (binary-only) served
    by a fake that gives the gold verdict in Qwen3Guard's format grades every reply of a
    target that replays the data: the observed rate is the gold unsafe share, no reply is
    ungraded and no category is guessed."""
    from mhsafety.guardmodels import SETTINGS
    from mhsafety.probe.records import read_replies
    from mhsafety.probe.runner import run_probe
    from mhsafety.probe.targets import ProbeSettings
    from mhsafety.registry import create_classifier
    from mhsafety.testing import DatasetResponder, FakeServer
    from tests.helpers.guard_fakes import GoldGuardResponder

    _, _, audit_file, audit, _ = probe_split
    gold = {(ex.context, ex.response_text): ex.label for ex in audit}
    with FakeServer(GoldGuardResponder(audit, SETTINGS["qwen3guard"]())) as guard, \
            FakeServer(DatasetResponder(audit)) as bot:
        create_classifier(f"qwen3guard:fake-guard@{guard.url}", max_attempts=1) \
            .save(tmp_path / "ckpt")
        run_probe(ProbeSettings(targets=[f"bot=m@{bot.url}"], data=audit_file,
                                grader=str(tmp_path / "ckpt"), resamples=200),
                  tmp_path / "out")
    replies = read_replies(tmp_path / "out" / "replies.jsonl")
    n = len(replies)
    assert n > 100 and all(r.pred is None and r.graded for r in replies)
    truth = [gold[(r.context, r.reply)] != SAFE_LABEL for r in replies]
    assert [r.unsafe for r in replies] == truth and 0 < sum(truth) < n
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["targets"]["bot"]
    assert summary["ungraded"] == 0 and sum(summary["categories"].values()) == 0
    assert summary["unsafe_rate"]["observed"] == pytest.approx(sum(truth) / n)
