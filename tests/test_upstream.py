"""Table 2 recomputed from the real upstream release: all 24 cells."""

import json
import shutil

import pytest

from mhsafety.errors import DataError
from mhsafety.upstream import reproduce

# benchmark.md section 5: recomputed means and stds (percent) for Acc, P, R, F1.
EXPECTED = {
    "ChatGPT-0301 zero-shot": [(47.52, 0.64), (49.95, 0.73), (47.52, 0.64), (48.45, 0.69)],
    "ChatGPT-0301 few-shot": [(48.42, 1.76), (50.96, 1.97), (48.42, 1.76), (47.93, 2.37)],
    "ChatGPT-0613 zero-shot": [(43.12, 0.84), (48.92, 4.58), (43.12, 0.84), (33.49, 1.56)],
    "ChatGPT-0613 few-shot": [(44.73, 4.52), (48.67, 3.16), (44.73, 4.52), (45.64, 4.03)],
    "BERT-base": [(70.25, 1.16), (70.46, 0.89), (70.25, 1.16), (69.67, 1.16)],
    "RoBERTa-large": [(70.40, 3.60), (70.95, 2.06), (70.40, 3.60), (69.77, 3.69)],
}
PAPER = {  # as printed in the paper, one decimal
    "ChatGPT-0301 zero-shot": [47.5, 49.9, 47.5, 48.4],
    "ChatGPT-0613 zero-shot": [43.1, 48.9, 43.1, 33.5],
    "BERT-base": [70.3, 70.5, 70.3, 69.7],
    "RoBERTa-large": [70.4, 71.0, 70.4, 69.8],
}


@pytest.fixture(scope="module")
def reproduced(upstream_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("records")
    return reproduce(upstream_dir, out_dir=out), out


@pytest.mark.slow
def test_all_24_cells_match(reproduced):
    systems, _ = reproduced
    assert [s.system for s in systems] == list(EXPECTED)
    for s in systems:
        for name, (mean, std) in zip(("accuracy", "precision", "recall", "f1"), EXPECTED[s.system]):
            agg = s.scores[name]
            assert 100 * agg.mean == pytest.approx(mean, abs=0.01), (s.system, name)
            assert 100 * agg.std == pytest.approx(std, abs=0.01), (s.system, name)
            assert agg.n == 5
        if s.system in PAPER:
            # The paper's one-decimal figures, up to its rounding (70.9499... printed as 71.0).
            got = [100 * s.scores[n].mean for n in ("accuracy", "precision", "recall", "f1")]
            assert got == pytest.approx(PAPER[s.system], abs=0.051)


def test_every_chatgpt_answer_parses(reproduced):
    systems, _ = reproduced
    assert sum(s.n_invalid for s in systems) == 0


def test_records_written_and_evaluable(reproduced):
    from mhsafety.scoring import score_paths

    systems, out = reproduced
    files = sorted(out.rglob("*.preds.jsonl"))
    assert len(files) == 30
    again = score_paths([out]).systems
    assert {s.system: s.scores["f1"].mean for s in again} == \
        pytest.approx({s.system: s.scores["f1"].mean for s in systems})
    first = json.loads(files[0].read_text(encoding="utf-8").splitlines()[0])
    assert {"id", "gold", "pred", "system", "run"} <= first.keys()


def test_reproduce_and_evaluate_print_the_same_cells(reproduced):
    """One scoring path and one rounding: the recomputed 0301 zero-shot accuracy is exactly
    47.525 and both commands print 47.53 (the runs are read back in another order)."""
    from mhsafety.scoring import score_paths
    from mhsafety.tables import format_table

    systems, out = reproduced
    again = score_paths([out])
    zero = next(r for r in again.rows if r.system == "ChatGPT-0301 zero-shot")
    assert 100 * zero.scores["accuracy"].mean == pytest.approx(47.525, abs=1e-9)
    # Cells after System, Runs and n (items scored).
    cells = {line.split("|")[1].strip(): line.split("|")[4:] for line in
             format_table(again.rows).splitlines()[2:]}
    from mhsafety.tables import rows_from_systems

    reproduced_cells = {line.split("|")[1].strip(): line.split("|")[4:] for line in
                        format_table(rows_from_systems(systems)).splitlines()[2:]}
    assert cells == reproduced_cells
    assert cells["ChatGPT-0301 zero-shot"][0].strip() == "47.53 ± 0.64"


def test_missing_and_malformed_files_are_named(upstream_dir, tmp_path):
    # The first run read is enough: reading stops at the first bad file.
    run = "ChatGPT_gen/0301/zero_shot/one"
    copy = tmp_path / "DialogueSafety"
    shutil.copytree(upstream_dir / run, copy / run)
    victim = copy / run / "17.json"
    victim.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"one/17.json: invalid JSON at line 1"):
        reproduce(tmp_path)
    victim.write_text('{"choices": []}', encoding="utf-8")
    with pytest.raises(DataError, match=r"one/17.json: field 'choices\[0\].message.content'"):
        reproduce(tmp_path)
    victim.unlink()
    with pytest.raises(DataError, match=r"one/17.json: missing file"):
        reproduce(tmp_path)
    with pytest.raises(DataError, match="not an upstream checkout"):
        reproduce(tmp_path / "DialogueSafety" / "ChatGPT_gen")
