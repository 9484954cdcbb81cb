"""`mhsafety train / predict` with encoders: options, errors, and a 2-process CPU run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from mhsafety.classifiers import read_manifest
from mhsafety.data import write_examples
from tests.helpers.tiny_bert import build_tiny_bert

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory, test_examples):
    root = tmp_path_factory.mktemp("enc-cli")
    model = build_tiny_bert(root / "tiny", [ex.context + ex.response for ex in test_examples])
    # 32 items of several labels (the file is sorted by label: its first 32 are all Nonsense).
    write_examples(root / "train.json", test_examples[200:800:19][:32])
    write_examples(root / "dev.json", test_examples[32:48])
    write_examples(root / "test.json", test_examples[100:116])
    return root, model


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from mhsafety.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


SMALL = ["--epochs", "1", "--max-length", "32", "--batch-size", "8"]


def test_train_select_on_test_marks_checkpoint(files, capsys):
    root, model = files
    out = root / "leaky"
    code, _, err = run_cli(["train", "--model", str(model), "--train", str(root / "train.json"),
                            "--select-on-test", str(root / "test.json"), "--head", "roberta",
                            *SMALL, "--out", str(out)], capsys)
    assert code == 0, err
    manifest = read_manifest(out)
    assert manifest["kind"] == "encoder" and manifest["config"]["head"] == "roberta"
    assert manifest["config"]["select_on_test"] is True
    assert manifest["extra"]["notes"] == ["epoch picked on the test set"]
    assert not (root / "leaky.work").exists()  # resumable state removed after the save

    preds = root / "leaky.preds.jsonl"
    code, _, err = run_cli(["predict", "--checkpoint", str(out), "--data",
                            str(root / "test.json"), "--batch-size", "4", "--device", "cpu",
                            "--precision", "fp32", "--out", str(preds)], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    expected_ids = [str(ex.get("id", i)) for i, ex in
                    enumerate(json.loads((root / "test.json").read_text()))]
    assert [r["id"] for r in records] == expected_ids
    assert all(len(r["probs"]) == 8 and r["pred"] == max(range(8), key=r["probs"].__getitem__)
               for r in records)
    assert all(r["notes"] == ["selected-on-test"] for r in records)
    code, table, err = run_cli(["evaluate", str(preds)], capsys)
    assert code == 0, err
    assert "epoch picked on the test set" in table


def test_encoder_options_and_model_errors_are_one_sentence(files, capsys):
    root, model = files
    base = ["train", "--train", str(root / "train.json"), "--out", str(root / "x")]
    code, _, err = run_cli([*base, "--model", "baseline", "--head", "cls"], capsys)
    assert code == 2 and "only apply to fine-tuned encoders" in err
    code, _, err = run_cli([*base, "--model", "no-such-org/no-such-model-xyz", *SMALL], capsys)
    assert code == 2
    assert err.startswith("mhsafety: error: cannot load the model 'no-such-org/no-such-model-xyz'")
    assert "local folder" in err and "Traceback" not in err and err.count("\n") == 1
    code, _, err = run_cli([*base, "--model", str(model), "--dev", str(root / "dev.json"),
                            "--select-on-test", str(root / "test.json")], capsys)
    assert code == 2 and "--select-on-test replaces --dev" in err
    code, _, err = run_cli([*base, "--model", str(model), "--class-weights", "1,2"], capsys)
    assert code == 2 and "class_weights must be 8 non-negative numbers" in err
    code, _, err = run_cli(["predict", "--checkpoint", str(root / "nothing"), "--out",
                            str(root / "p.jsonl"), "--data", str(root / "test.json")], capsys)
    assert code == 2 and "no such checkpoint folder" in err
    assert not (root / "x").exists()


@pytest.mark.slow
def test_two_process_cpu_run_writes_one_checkpoint(files, tmp_path):
    root, model = files
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "mhsafety", "train", "--model", str(model),
           "--train", str(root / "train.json"), "--dev", str(root / "dev.json"), *SMALL,
           "--epochs", "2", "--patience", "0", "--warmup-ratio", "0", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # no temp or work leftovers
    manifest = read_manifest(out)
    history = manifest["extra"]["history"]
    # 32 items, batch 8 over 2 processes: 4 optimizer steps, each process sees 16 items.
    assert [row["steps"] for row in history] == [4, 8]
    # The linear schedule counts global steps: half-way through, half the learning rate.
    assert history[0]["learning_rate"] == pytest.approx(1e-5)
    # Each process fed at most 16 items x 32 tokens (one process alone would feed ~1,000).
    assert 0 < history[0]["tokens"] <= 16 * 32
    from mhsafety.data import load_examples
    from mhsafety.registry import load_classifier

    probs = load_classifier(out).predict_proba(load_examples(root / "test.json"))
    assert probs.shape == (16, 8)

    # predict under torchrun: each process scores a share, process 0 writes every record.
    preds = tmp_path / "ddp.preds.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
           "mhsafety", "predict", "--checkpoint", str(out), "--data", str(root / "test.json"),
           "--out", str(preds)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in records] == [ex.id for ex in load_examples(root / "test.json")]
    np.testing.assert_allclose([r["probs"] for r in records], probs, atol=1e-5)


def test_benchmark_encoder_paper_protocol_marks_test_selection(files, capsys):
    root, model = files
    code, table, err = run_cli(
        ["benchmark", "--system", f"Tiny=encoder:{model}", "--train", str(root / "train.json"),
         "--data", str(root / "test.json"), "--seeds", "42", "--config", "epochs=1",
         "--config", "max_length=32", "--config", "select_on_test=true", "--no-paper",
         "--out", str(root / "bench")], capsys)
    assert code == 0, err
    row = next(line for line in table.splitlines() if line.startswith("| Tiny"))
    assert "epoch picked on the test set" in row
    records = (root / "bench" / "predictions" / "Tiny" / "seed-42.preds.jsonl").read_text()
    assert records.count('"selected-on-test"') == 16  # the note code; tables print its text
