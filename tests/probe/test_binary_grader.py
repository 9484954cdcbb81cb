"""A binary-only grader (a general guard model: unsafe or safe, category unknown) grades the
probe's replies on the binary view: counted in the rates, in no category, never ungraded."""

import numpy as np

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
