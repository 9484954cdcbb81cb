"""The leaderboard: scores of fake systems checked against scikit-learn, the command over four
kinds of system, binary-only rows, overlap refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    f1_score,
    recall_score,
    roc_curve,
)

from mhsafety.cli import main
from mhsafety.data import OverlapError, write_examples
from mhsafety.leaderboard import DASH, LeaderboardSettings, run_leaderboard
from mhsafety.records import PredictionRecord, write_records
from mhsafety.taxonomy import NUM_LABELS, SAFE_LABEL

N = 160


def _run(capsys, *args):
    """``mhsafety ARGS`` as a user runs it: (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def items(test_examples, tmp_path):
    """A slice of the public test set that has every label, as a data file."""
    chosen = test_examples[:N]
    path = tmp_path / "items.jsonl"
    write_examples(path, chosen)
    return chosen, path


def _records(items, preds, system, run="0", probs=None, unsafe=None):
    out = []
    for i, ex in enumerate(items):
        out.append(PredictionRecord(ex.id or str(i), ex.label, preds[i], system, run,
                                    probs=None if probs is None else probs[i].tolist(),
                                    unsafe=None if unsafe is None else unsafe[i]))
    return out


def _noisy(gold, rate, seed):
    rng = np.random.default_rng(seed)
    pred = gold.copy()
    flip = rng.random(gold.size) < rate
    pred[flip] = rng.integers(0, NUM_LABELS, flip.sum())
    return pred


def _binary_sklearn(gold, pred):
    """Recall and false-alarm rate with an invalid answer on the wrong side."""
    g = gold != SAFE_LABEL
    said = np.where(pred < 0, ~g, pred != SAFE_LABEL)
    recall = recall_score(g, said)
    false_alarm = float(np.sum(said & ~g) / np.sum(~g))
    return recall, false_alarm


def test_scores_match_scikit_learn(items, tmp_path):
    examples, data = items
    gold = np.array([ex.label for ex in examples])
    a_runs = [_noisy(gold, 0.3, s) for s in (1, 2)]
    b = _noisy(gold, 0.6, 3)
    b_with_invalid = b.copy()
    b_with_invalid[::17] = -1  # abstentions
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(NUM_LABELS), size=N)
    probs[np.arange(N), gold] += rng.random(N)  # some signal
    probs /= probs.sum(axis=1, keepdims=True)
    c = probs.argmax(axis=1)
    write_records(tmp_path / "a.preds.jsonl",
                  [r for k, p in enumerate(a_runs) for r in _records(examples, p.tolist(), "A",
                                                                     f"r{k}")])
    write_records(tmp_path / "b.preds.jsonl",
                  _records(examples, [None if x < 0 else int(x) for x in b_with_invalid], "B"))
    c_records = _records(examples, c.tolist(), "C", probs=probs)
    for k, rec in enumerate(c_records):  # what a producer measured per item
        rec.meta = {"latency_s": 0.5 + k % 2, "tokens": {"total_tokens": 100}, "cost_usd": 0.002}
    write_records(tmp_path / "c.preds.jsonl", c_records)
    settings = LeaderboardSettings(records=[str(tmp_path / f"{x}.preds.jsonl") for x in "abc"],
                                   data=str(data), resamples=200)
    result = run_leaderboard(settings, tmp_path / "out")
    rows = {r.name: r for r in result.rows}

    def check(row, runs):
        mean = lambda f: float(np.mean([f(p) for p in runs]))
        labels = list(range(NUM_LABELS)) + [-1]
        assert row.scores["accuracy"].estimate == pytest.approx(
            mean(lambda p: accuracy_score(gold, p)))
        assert row.scores["unsafe_recall"].estimate == pytest.approx(
            mean(lambda p: _binary_sklearn(gold, p)[0]))
        assert row.scores["false_alarm"].estimate == pytest.approx(
            mean(lambda p: _binary_sklearn(gold, p)[1]))
        assert row.scores["kappa_labels"].estimate == pytest.approx(
            mean(lambda p: cohen_kappa_score(gold, p, labels=labels)))
        assert row.scores["kappa_binary"].estimate == pytest.approx(mean(
            lambda p: cohen_kappa_score((gold != SAFE_LABEL).astype(int),
                                        np.where(p < 0, 2, (p != SAFE_LABEL).astype(int)),
                                        labels=[0, 1, 2])))
        for key in ("accuracy", "unsafe_recall", "kappa_binary"):
            s = row.scores[key]
            assert s.low <= s.estimate <= s.high

    check(rows["A"], a_runs)
    check(rows["B"], [b_with_invalid])
    check(rows["C"], [c])
    # Without invalid answers macro-F1 is scikit-learn's.
    assert rows["A"].scores["macro_f1"].estimate == pytest.approx(
        np.mean([f1_score(gold, p, average="macro") for p in a_runs]))
    assert rows["C"].scores["macro_f1"].estimate == pytest.approx(
        f1_score(gold, c, average="macro"))
    # Recall at 10 % false alarms: the best point of the ROC curve within it.
    fpr, tpr, _ = roc_curve(gold != SAFE_LABEL, 1 - probs[:, SAFE_LABEL],
                            drop_intermediate=False)
    assert rows["C"].scores["recall_at_fa"].estimate == pytest.approx(tpr[fpr <= 0.1].max())
    assert rows["A"].scores["recall_at_fa"] is None  # no probabilities: no curve
    assert rows["A"].self_alpha is not None and rows["B"].self_alpha is None
    assert rows["C"].seconds_per_1000 == pytest.approx(1000.0)
    assert rows["C"].tokens_per_1000 == pytest.approx(100_000)
    assert rows["C"].cost_per_1000.estimate == pytest.approx(2.0)
    assert rows["A"].cost_per_1000 is None and rows["A"].tokens_per_1000 is None
    # Sorted by the headline: binary kappa, best first.
    from mhsafety.analysis.stats import EXACT_BELOW, group_sizes

    sizes = group_sizes(gold)
    small = [k for k in rows["A"].nodes if sizes[f"{k}:f1"] < EXACT_BELOW]
    assert small, "the slice should hold a node with few items"
    for key, score in rows["A"].nodes.items():  # a node F1 over < 20 items has no interval
        assert math.isnan(score.low) == (key in small)
    heads = [r.scores["kappa_binary"].estimate for r in result.rows]
    assert heads == sorted(heads, reverse=True)
    saved = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert saved["headline"] == "kappa_binary" and len(saved["rows"]) == 3
    assert (tmp_path / "out" / "curve.png").is_file()


def test_binary_only_system_gets_dashes_not_guesses(items, tmp_path):
    examples, data = items
    gold = np.array([ex.label for ex in examples])
    verdicts = [bool(g != SAFE_LABEL) if i % 5 else None for i, g in enumerate(gold)]
    write_records(tmp_path / "guard.preds.jsonl",
                  _records(examples, [None] * N, "Guard", unsafe=verdicts))
    write_records(tmp_path / "labels.preds.jsonl", _records(examples, gold.tolist(), "Gold"))
    result = run_leaderboard(LeaderboardSettings(
        records=[str(tmp_path / "guard.preds.jsonl"), str(tmp_path / "labels.preds.jsonl")],
        data=str(data), resamples=50, panel="majority"), tmp_path / "out")
    guard = next(r for r in result.rows if r.name == "Guard")
    assert not guard.labels
    for key in ("accuracy", "macro_f1", "kappa_labels"):
        assert guard.scores[key] is None
    assert all(v is None for v in guard.nodes.values())
    # Abstentions are misses and false alarms, never "safe".
    g = gold != SAFE_LABEL
    said = np.array([(not gg) if v is None else v for v, gg in zip(verdicts, g)])
    assert guard.scores["unsafe_recall"].estimate == pytest.approx(recall_score(g, said))
    assert guard.scores["coverage"].estimate == pytest.approx(np.mean([v is not None
                                                                       for v in verdicts]))
    table = (tmp_path / "out" / "table.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| Guard "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[7] == cells[8] == cells[9] == DASH  # Acc, Macro-F1, κ 8-way
    assert any(r.name == "Panel (majority)" for r in result.rows)
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Guard" in page and "Krippendorff" in page and "Cohen's kappa of each pair" in page


def _noisy_responder(gold_responder, every):
    from mhsafety.taxonomy import LABEL_NAMES

    count = {"n": 0}

    def answer(prompt, body):
        count["n"] += 1
        right = gold_responder(prompt, body)
        if count["n"] % every:
            return right
        return LABEL_NAMES[(LABEL_NAMES.index(right) + 1) % NUM_LABELS]

    return answer


def test_command_ranks_four_kinds_of_system(items, tmp_path, capsys):
    from mhsafety.testing import FakeServer, GoldResponder

    examples, data = items
    gold = np.array([ex.label for ex in examples])
    write_records(tmp_path / "mine.preds.jsonl",
                  _records(examples, _noisy(gold, 0.5, 9).tolist(), "My classifier"))
    with FakeServer(GoldResponder(examples)) as good, \
            FakeServer(_noisy_responder(GoldResponder(examples), 3)) as noisy:
        out = tmp_path / "runs" / "leaderboard"
        code, stdout, err = _run(
            capsys, "leaderboard", "--data", data, "--system", "baseline",
            "--system", f"Gold judge=judge:fake@{good.url}",
            "--system", f"Noisy judge=judge:fake@{noisy.url}",
            "--records", tmp_path / "mine.preds.jsonl",
            "--config", "judge.concurrency=8", "--config", "Noisy judge.rounds=2",
            "--config", "Gold judge.rounds=1",
            "--resamples", "50", "--folds", "3", "--out", out)
    assert code == 0, err
    for name in ("table.md", "table.csv", "leaderboard.json", "nodes.md", "index.html"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    names = [r["system"] for r in rows]
    assert names[0] == "Gold judge"  # the gold answers rank first
    assert set(names) == {"baseline", "Gold judge", "Noisy judge", "My classifier"}
    by = {r["system"]: r for r in rows}
    assert by["Gold judge"]["scores"]["accuracy"]["estimate"] == 1.0
    assert "cross-fitted on these items" in by["baseline"]["source"]
    assert by["Noisy judge"]["runs"] == 2 and by["Noisy judge"]["self_consistency_alpha"] < 1
    assert by["Gold judge"]["seconds_per_1000_items"] > 0
    assert "Gold judge" in stdout
    # A rerun replaces its own folder; a folder the leaderboard did not write is refused.
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep")
    code, _, err = _run(capsys, "leaderboard", "--data", data, "--records",
                        tmp_path / "mine.preds.jsonl", "--out", stranger)
    assert code == 2 and (stranger / "notes.txt").read_text() == "keep"
    assert len(err.strip().splitlines()) == 1


def test_paper_rows_are_labelled_the_papers(upstream_dir, test_json, tmp_path):
    result = run_leaderboard(LeaderboardSettings(systems=[f"paper:{upstream_dir}"],
                                                 data=str(test_json), resamples=20),
                             tmp_path / "out")
    assert len(result.rows) == 6
    assert all(r.name.startswith("paper: ") and r.source.startswith("paper") for r in result.rows)
    bert = next(r for r in result.rows if r.name == "paper: BERT-base")
    assert bert.runs == 5 and "selected-on-test" in bert.notes


def test_checkpoint_trained_on_the_items_is_refused(items, tmp_path, capsys):
    from mhsafety.registry import create_classifier

    examples, data = items
    clf = create_classifier("baseline").fit(examples)
    clf.save(tmp_path / "ckpt")
    settings = LeaderboardSettings(systems=[str(tmp_path / "ckpt")], data=str(data),
                                   resamples=20)
    with pytest.raises(OverlapError):
        run_leaderboard(settings, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    code, _, err = _run(capsys, "leaderboard", "--data", data, "--system", tmp_path / "ckpt",
                        "--out", tmp_path / "o2")
    assert code == 2 and "training data" in err, err
    marked = run_leaderboard(settings.replace(allow_overlap=True), tmp_path / "out")
    assert "overlap-allowed" in marked.rows[0].notes
    # Its records, which name it, are checked as the checkpoint itself is.
    made = _records(examples, clf.predict(examples).tolist(), "Fitted")
    for rec in made:
        rec.meta = {"checkpoint": str(tmp_path / "ckpt")}
    write_records(tmp_path / "fitted.preds.jsonl", made)
    from_records = LeaderboardSettings(records=[str(tmp_path / "fitted.preds.jsonl")],
                                       data=str(data), resamples=20)
    with pytest.raises(OverlapError):
        run_leaderboard(from_records)
    assert "overlap-allowed" in run_leaderboard(
        from_records.replace(allow_overlap=True)).rows[0].notes


def test_bad_settings_name_the_parameter(capsys):
    from mhsafety.settings import SettingsError

    with pytest.raises(SettingsError, match="systems"):
        run_leaderboard(LeaderboardSettings())
    code, _, err = _run(capsys, "leaderboard", "--out", "nowhere")
    assert code == 2 and "--system" in err and "systems" not in err

    with pytest.raises(SettingsError, match="matched_false_alarm"):
        LeaderboardSettings(matched_false_alarm=1.5)
    with pytest.raises(SettingsError, match="panel"):
        LeaderboardSettings(panel="mean")
    assert math.isclose(LeaderboardSettings().matched_false_alarm, 0.1)


def test_weighted_panel_follows_the_system_that_is_right_out_of_fold(items, tmp_path):
    examples, data = items
    gold = np.array([ex.label for ex in examples])
    for name, pred in (("Right", gold), ("Random 1", _noisy(gold, 1.0, 5)),
                       ("Random 2", _noisy(gold, 1.0, 6))):
        write_records(tmp_path / f"{name}.preds.jsonl", _records(examples, pred.tolist(), name))
    files = [str(p) for p in sorted(tmp_path.glob("*.preds.jsonl"))]
    # A records file given as a system, bare, is read as records.
    weighted = run_leaderboard(LeaderboardSettings(systems=files[:1], records=files[1:],
                                                   data=str(data), resamples=20,
                                                   panel="weighted", folds=3))
    assert len(weighted.rows) == 4
    row = next(r for r in weighted.rows if r.name == "Panel (weighted)")
    assert "out of fold" in row.source
    assert row.scores["accuracy"].estimate > 0.9
    majority = run_leaderboard(LeaderboardSettings(records=files, data=str(data),
                                                   resamples=20, panel="majority"))
    plain = next(r for r in majority.rows if r.name == "Panel (majority)")
    assert plain.scores["accuracy"].estimate < row.scores["accuracy"].estimate
    assert weighted.agreement is not None and weighted.agreement.labels_alpha < 0.5


def test_guard_model_kinds_rank_on_their_views(items, tmp_path):
    """A binary-only kind (qwen3guard) and a label-naming one (policy), each behind a fake
    server answering the gold verdict in its own format."""
    from mhsafety.guardmodels.settings import SETTINGS
    from mhsafety.testing import FakeServer
    from tests.helpers.guard_fakes import GoldGuardResponder

    examples, data = items
    safe = [ex for ex in examples if ex.label == SAFE_LABEL][:15]
    examples = safe + [ex for ex in examples if ex.label != SAFE_LABEL][:25]
    write_examples(data, examples)
    with FakeServer(GoldGuardResponder(examples, SETTINGS["qwen3guard"]())) as qwen, \
            FakeServer(GoldGuardResponder(examples, SETTINGS["policy"]())) as policy:
        result = run_leaderboard(LeaderboardSettings(
            systems=[f"Qwen3Guard=qwen3guard:fake-guard@{qwen.url}",
                     f"Policy=policy:fake-policy@{policy.url}"],
            data=str(data), resamples=20), tmp_path / "out")
    rows = {r.name: r for r in result.rows}
    assert rows["Qwen3Guard"].scores["kappa_binary"].estimate == pytest.approx(1.0)
    assert rows["Qwen3Guard"].scores["accuracy"] is None  # binary only: "–", not guessed
    assert not rows["Qwen3Guard"].labels
    assert rows["Policy"].scores["accuracy"].estimate == pytest.approx(1.0)
