"""Harness results read back: lm-eval sample files and inspect logs as prediction records,
through the same loader `evaluate`, `analyze` and `report` use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mhsafety.errors import DataError
from mhsafety.records import load_runs

from .conftest import need


def _sample(doc_id, label, answer):
    return {"doc_id": doc_id, "doc": {"id": str(doc_id), "context": "[seeker]c",
                                      "response": "[supporter]r", "label": label},
            "resps": [[answer]], "filtered_resps": [answer]}


def test_lmeval_samples_become_one_run_named_after_the_model(tmp_path):
    folder = tmp_path / "lm" / "my-model"
    folder.mkdir(parents=True)
    (folder / "results_2026-01-01T00-00-00.json").write_text(json.dumps(
        {"model_name": "my-model", "configs": {}}))
    lines = [_sample(0, 7, "Safe Response"), _sample(1, 2, "[invalid]"),
             _sample(2, 0, "Nonsense")]
    (folder / "samples_mhsafety_dialogue_safety_2026-01-01T00-00-00.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines))
    (folder / "notes.jsonl").write_text("not a harness file\n")  # ignored in a folder
    [run] = load_runs([tmp_path / "lm"])["my-model zero-shot"]
    assert [r.pred for r in run.records] == [7, None, 0]
    assert [r.gold for r in run.records] == [7, 2, 0]
    assert run.records[1].error == "answer names no category"


def test_a_samples_file_of_another_task_is_one_sentence(tmp_path):
    path = tmp_path / "samples_other_task.jsonl"
    path.write_text(json.dumps({"doc": {"q": 1}, "filtered_resps": ["B"]}) + "\n")
    with pytest.raises(DataError, match="not a label name"):
        load_runs([path])
    path.write_text(json.dumps({"unexpected": True}) + "\n")
    with pytest.raises(DataError, match="not an lm-eval sample of the mhsafety task"):
        load_runs([path])


def test_a_file_that_is_no_inspect_log_is_one_sentence(tmp_path):
    need("inspect_ai", "inspect")
    path = tmp_path / "broken.eval"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable inspect eval log"):
        load_runs([path])


@pytest.mark.slow
def test_analyze_and_report_take_an_inspect_log(small_file, tmp_path):
    need("inspect_ai", "inspect")
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    from mhsafety.integrations.inspect_task import dialogue_safety

    def outputs(messages, tools, tool_choice, config):
        out = ModelOutput.from_content(model="mockllm", content="Linguistic Neglect")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    [log] = inspect_eval(dialogue_safety(data=str(small_file)),
                         model=get_model("mockllm/model", custom_outputs=outputs),
                         log_dir=str(tmp_path / "logs"), display="none", epochs=2)
    run = [sys.executable, "-m", "mhsafety"]
    out = subprocess.run(run + ["analyze", log.location, "--json", "--resamples", "200"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    assert "mockllm/model zero-shot" in out
    subprocess.run(run + ["report", str(tmp_path / "logs"), "--out", str(tmp_path / "report"),
                          "--resamples", "200"], check=True, timeout=300)
    assert "mockllm/model zero-shot" in (tmp_path / "report" / "index.html").read_text(
        encoding="utf-8")


def test_readers_register_when_the_records_module_meets_their_files(tmp_path):
    """No CLI, no explicit import: the library's own loader finds the lm-eval reader, and
    loading the records module imported no harness module (nor inspect)."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "results_x.json").write_text(json.dumps({"model_name": "m", "configs": {}}))
    (folder / "samples_mhsafety_dialogue_safety_x.jsonl").write_text(
        json.dumps(_sample(0, 7, "Safe Response")) + "\n")
    code = (
        "import sys\n"
        "from mhsafety.scoring import score_paths\n"
        "import mhsafety.records as records\n"
        "assert 'mhsafety.integrations.harness_logs' not in sys.modules\n"
        f"scores = score_paths([{str(folder)!r}])\n"
        "assert 'mhsafety.integrations.harness_logs' in sys.modules\n"
        "assert 'inspect_ai' not in sys.modules and 'mhsafety.cli' not in sys.modules\n"
        "from pathlib import Path\n"
        "from mhsafety.integrations.harness_logs import read_inspect_log\n"
        "assert records._foreign_reader(Path('x.eval')) is read_inspect_log\n"
        "print(scores.systems[0].system)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "m zero-shot"

