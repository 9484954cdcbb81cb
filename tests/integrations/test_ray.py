"""Ray Data screening on a local two-CPU cluster started by the test, over two shards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import need


@pytest.fixture(scope="module")
def baseline_checkpoint(tmp_path_factory, test_examples):
    from mhsafety.registry import create_classifier

    path = tmp_path_factory.mktemp("ray") / "baseline"
    model = create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False, ngram_max=2,
                              max_iter=300)
    model.fit(test_examples).save(path)
    return path


def _shards(examples, folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    rows = [{"id": ex.id, "context": ex.context, "response": ex.response, "session": "s"}
            for ex in examples]
    rows[3]["response"] = "   "  # an empty reply: unverified, never a crash
    for k, part in enumerate((rows[:20], rows[20:])):
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{k}.parquet")
    return rows


@pytest.mark.slow
def test_screen_batch_adds_the_guards_columns(baseline_checkpoint, test_examples):
    need("pandas", "ray")
    import pandas as pd

    from mhsafety.guard.core import Guard
    from mhsafety.integrations.ray import OUTPUT_COLUMNS, ScreenBatch

    items = test_examples[:6]
    batch = pd.DataFrame({"id": [ex.id for ex in items], "context": [ex.context for ex in items],
                          "response": [ex.response for ex in items], "extra": range(6)})
    batch.loc[2, "response"] = ""
    out = ScreenBatch(str(baseline_checkpoint))(batch)
    assert list(out.columns) == ["id", "context", "response", "extra", *OUTPUT_COLUMNS]
    assert out.loc[2, "decision"] == "unverified" and "bad input" in out.loc[2, "reason"]
    guard = Guard.load(baseline_checkpoint)
    expected = guard.check_many([ex for i, ex in enumerate(items) if i != 2])
    got = out.drop(index=2)
    assert list(got["decision"]) == [r.decision for r in expected]
    assert list(got["label"]) == [r.label for r in expected]
    assert list(got["node"]) == [r.node for r in expected]
    assert list(got["p_safe"]) == pytest.approx([r.p_safe for r in expected])


@pytest.mark.slow
def test_predict_engine_ray_over_two_shards_on_a_local_cluster(
        baseline_checkpoint, test_examples, tmp_path):
    need("ray", "ray")
    import pandas as pd
    import ray

    from mhsafety.guard.core import Guard
    from mhsafety.integrations.ray import screen_files

    rows = _shards(test_examples[:40], tmp_path / "logs")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        n = screen_files(str(tmp_path / "logs" / "*.parquet"), baseline_checkpoint,
                         tmp_path / "out", batch_size=8)
    finally:
        ray.shutdown()
    assert n == 40
    df = pd.concat(pd.read_parquet(f) for f in sorted((tmp_path / "out").glob("*.parquet")))
    df = df.set_index("id").loc[[r["id"] for r in rows]]
    assert df.loc[rows[3]["id"], "decision"] == "unverified"
    good = [ex for i, ex in enumerate(test_examples[:40]) if i != 3]
    expected = Guard.load(baseline_checkpoint).check_many(good)
    assert list(df.drop(index=rows[3]["id"])["label"]) == [r.label for r in expected]
    assert set(df["session"]) == {"s"}  # input columns are kept


@pytest.mark.slow
def test_cli_engine_ray_says_what_it_needs(baseline_checkpoint, tmp_path):
    run = [sys.executable, "-m", "mhsafety", "predict", "--checkpoint", str(baseline_checkpoint)]
    out = subprocess.run(run + ["--engine", "ray", "--out", str(tmp_path / "o")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--data PATTERN" in out.stderr
    out = subprocess.run(run + ["--engine", "ray", "--data", str(tmp_path / "none-*.parquet"),
                                "--out", str(tmp_path / "o")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "matches no file" in out.stderr
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"context": "[seeker]hi", "response": "[supporter]hello"}) + "\n")
    out = subprocess.run(run + ["--data", str(data), "--out", str(tmp_path / "p.jsonl"),
                                "--ray-actors", "2"], check=False, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "for --engine ray only" in out.stderr
