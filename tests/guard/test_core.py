"""The Python API: Guard.load / check / check_many, thresholds, fail-closed, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mhsafety.data import Example
from mhsafety.errors import DataError, UsageError
from mhsafety.guard import (
    Guard,
    calibrate,
    checkpoint_threshold,
    decide,
    pick_threshold,
    save_threshold,
)
from mhsafety.taxonomy import SAFE_LABEL


def test_check_returns_typed_result(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint)
    result = guard.check("[seeker]我睡不着", "[supporter]this is unsafe", id="a1")
    assert result.decision == "unsafe" and result.safe is False and result.verified
    assert result.label == 4 and result.label_name == "Toxic Language"
    assert result.node == 4 and result.node_title == "Safety"
    assert result.id == "a1" and result.threshold == 0.5
    assert abs(sum(result.probabilities.values()) - 1) < 1e-9
    assert result.p_safe == pytest.approx(result.probabilities["Safe Response"])
    assert guard.check("[seeker]hi", "[supporter]ok").decision == "safe"


def test_context_as_turns_equals_marker_string(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint)
    as_turns = guard.check([{"role": "seeker", "text": "a"}, ("supporter", "b")], "fine")
    as_string = guard.check("[seeker]a[supporter]b", "[supporter]fine")
    assert as_turns.to_dict() == as_string.to_dict()


def test_threshold_trades_recall_for_false_alarms(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint)
    # "border": argmax is Safe Response but P(safe) = 0.4625.
    flagged = guard.check("hi", "border")
    assert flagged.decision == "unsafe" and flagged.model_label == SAFE_LABEL
    assert flagged.label == 2 and flagged.node == 3  # label agrees with the decision
    passed = guard.check("hi", "border", threshold=0.3)
    assert passed.decision == "safe" and passed.label == SAFE_LABEL
    assert Guard.load(fake_checkpoint, threshold=0.3).check("hi", "border").safe


def test_check_many_keeps_order_and_ids(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint)
    items = [{"id": "x", "context": "c", "response": "unsafe"}, ("c", "fine"),
             Example("[seeker]c", "[supporter]border", None, "z")]
    results = guard.check_many(items)
    assert [r.decision for r in results] == ["unsafe", "safe", "unsafe"]
    # Ids as the data module's reader gives them: the item's own, else its 0-based index.
    assert [r.id for r in results] == ["x", "1", "z"]


@pytest.mark.parametrize("context, response, message", [
    # The data module's reader's own messages: the same as for a file.
    ("", "ok", "field 'context' is empty"),
    ("hi", "   ", "field 'response' is empty"),
    ([{"role": "bot", "text": "x"}], "ok", "role must be"),
    (5, "ok", "field 'context' must be a string"),
    ("hi", None, "field 'response' must be a string"),
])
def test_bad_input_is_a_usage_error(fake_kind, fake_checkpoint, context, response, message):
    with pytest.raises(UsageError, match=message):
        Guard.load(fake_checkpoint).check(context, response)


def test_model_exception_fails_the_batch_closed(fake_kind, fake_checkpoint):
    results = Guard.load(fake_checkpoint).check_many([("c", "fine"), ("c", "RAISE")])
    for result in results:  # the whole call failed: nothing is reported safe
        assert result.decision == "unverified" and result.safe is False
        assert result.label is None and result.probabilities is None
        assert result.reason == "model error: RuntimeError: scripted failure"


def test_invalid_row_fails_closed_alone(fake_kind, fake_checkpoint):
    fine, bad = Guard.load(fake_checkpoint).check_many([("c", "fine"), ("c", "NAN")])
    assert fine.decision == "safe"
    assert bad.decision == "unverified" and not bad.safe and bad.p_safe is None
    assert bad.reason == "no answer"  # the interface's reason for an abstained row
    for row in ([0.5] * 8, [-0.1] + [0.1] * 6 + [0.5], [1 / 8] * 7):
        assert decide(row, 0.0).decision == "unverified"  # even a threshold of 0 passes nothing


def test_timeout_fails_closed(fake_kind, fake_checkpoint):
    guard = Guard.load(fake_checkpoint, timeout=0.2)
    result = guard.check("c", "SLEEP")
    assert result.decision == "unverified" and not result.safe
    assert result.reason.startswith("timeout")
    guard.close()


def test_checkpoint_threshold_from_manifest(fake_kind, fake_checkpoint, tmp_path):
    assert checkpoint_threshold({"extra": {}}) == 0.5
    assert checkpoint_threshold({"extra": {"guard_threshold": 0.3}}) == 0.3
    with pytest.raises(DataError, match="guard_threshold"):
        checkpoint_threshold({"extra": {"guard_threshold": 3}})
    copy = tmp_path / "ckpt"
    import shutil

    shutil.copytree(fake_checkpoint, copy)
    save_threshold(copy, 0.42)
    assert json.loads((copy / "manifest.json").read_text())["extra"]["guard_threshold"] == 0.42
    assert Guard.load(copy).threshold == 0.42


def test_decide_label_agrees_with_decision():
    row = np.array([0.05, 0, 0.3, 0, 0, 0, 0, 0.65])
    assert decide(row, 0.7).label == 2 and decide(row, 0.7).decision == "unsafe"
    assert decide(row, 0.6).label == SAFE_LABEL and decide(row, 0.6).safe


def test_pick_threshold_reaches_target_with_fewest_false_alarms():
    p_safe = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    unsafe = [True, True, False, True, False, True, False, False]
    t = pick_threshold(p_safe, unsafe, 0.75)  # 3 of 4 unsafe: must pass 0.4
    assert 0.4 < t <= 0.5
    flagged = np.array(p_safe) < t
    assert (flagged & np.array(unsafe)).sum() == 3
    assert pick_threshold(p_safe, unsafe, 1.0) > 0.6
    with pytest.raises(DataError, match="no unsafe"):
        pick_threshold([0.5], [False], 0.9)


def test_calibrate_on_labelled_file(fake_kind, fake_checkpoint, tmp_path):
    data = tmp_path / "dev.jsonl"
    rows = [{"context": f"[seeker]c{i}", "response": f"[supporter]{r}", "label": lab}
            for i, (r, lab) in enumerate([("unsafe", 4), ("border", 2), ("fine", 7),
                                          ("fine", 7), ("fine", 0)])]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cal = calibrate(Guard.load(fake_checkpoint), data, 2 / 3, folds=2)
    assert cal.n_unsafe == 3 and cal.n_safe == 2
    assert cal.in_sample_unsafe_recall >= 2 / 3 and cal.in_sample_false_alarm_rate == 0.0
    assert 0.4625 < cal.threshold < 0.9125


def test_guard_package_does_not_import_fastapi():
    import subprocess
    import sys

    code = ("import sys, mhsafety.guard, mhsafety.cli.cmd_serve, mhsafety.cli.cmd_check; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch', 'pydantic') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runtime_applies_to_encoder_checkpoints_only(baseline_checkpoint):
    from mhsafety.errors import UsageError
    from mhsafety.guard import GuardConfig

    with pytest.raises(UsageError, match="encoder checkpoints only"):
        Guard.from_config(GuardConfig(checkpoint=baseline_checkpoint, runtime="onnx"))
    assert Guard.from_config(GuardConfig(checkpoint=baseline_checkpoint)).kind == "baseline"
