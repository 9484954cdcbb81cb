"""One reader: `check --input F` and `predict --data F` see the same items, with the same ids
and the same P(safe), marked or unmarked (issue 11)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mhsafety.cli import cli
from mhsafety.taxonomy import SAFE_LABEL


def run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
@pytest.mark.parametrize("marked", [True, False])
def test_check_and_predict_agree_on_ids_and_p_safe(baseline_checkpoint, test_examples,
                                                    tmp_path, marked):
    items = []
    for i, ex in enumerate(test_examples[:30]):
        context = ex.context if marked else "".join(t.text for t in ex.turns)
        response = ex.response if marked else ex.response_text
        item = {"context": context, "response": response}
        if i % 3 == 0:
            item["id"] = f"own-{i}"  # some items carry an id, the rest get their index
        items.append(item)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items),
                    encoding="utf-8")
    records = tmp_path / "pred.jsonl"
    # The baseline was fitted on these items: predict refuses that unless told (the figures
    # here are ids and probabilities, not scores).
    run(["predict", "--checkpoint", str(baseline_checkpoint), "--data", str(data),
         "--out", str(records), "--allow-overlap"])
    predicted = [json.loads(line) for line in records.read_text().splitlines()]
    checked = [json.loads(line) for line in run(
        ["check", "items", "--checkpoint", str(baseline_checkpoint), "--input", str(data),
         "--no-rules"]).output.splitlines()]
    assert [r["id"] for r in checked] == [r["id"] for r in predicted]
    assert [r["id"] for r in checked][:3] == ["own-0", "1", "2"]
    for c, p in zip(checked, predicted):
        # Records keep probabilities to 6 decimals.
        assert c["p_safe"] == pytest.approx(p["probs"][SAFE_LABEL], abs=6e-7), c["id"]


def test_check_input_errors_are_the_readers(fake_kind, fake_checkpoint, tmp_path):
    from mhsafety.errors import DataError

    data = tmp_path / "bad.jsonl"
    data.write_text('{"context": "a", "response": "b"}\n{"context": "a"}\n')
    result = CliRunner().invoke(cli, ["check", "items", "--checkpoint", str(fake_checkpoint),
                                      "--input", str(data)])
    assert isinstance(result.exception, DataError)
    assert str(data) in str(result.exception)
    assert "missing field 'response'" in str(result.exception)
    with pytest.raises(DataError) as predict_error:
        from mhsafety.data import load_examples

        load_examples(data, require_label=False)
    assert str(predict_error.value) == str(result.exception)
