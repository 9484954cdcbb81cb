"""A cascade of the offline baseline and an LLM judge on the public test set: for a grid of
bands, unsafe recall, false-alarm rate, share escalated and mean latency per reply.

Protocol (nothing scores an item it was trained on):
- first tier: the baseline, cross-fitted: 5 context-grouped stratified folds (seed 42), each
  fold scored by a baseline trained on the other four; every tier at threshold 0.5;
- second tier: an LLM judge behind the bundled OpenAI-compatible fake server, replaying the
  upstream release's real gpt-3.5-turbo (0301, zero-shot, round one) answers to these items,
  with a simulated per-answer latency (``--judge-latency``, default 0.3 s);
- the rule tier on, as the guard runs by default; bands as in ``check --calibrate
  --escalate-to``; latency = first-tier single-item latency + share escalated x the judge's.

    python benchmarks/bench_guard_cascade.py                      # about 6 min on 2 cores
    python benchmarks/bench_guard_cascade.py --judge-latency 1.0 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "dialogue-safety"
RELEASE_FOLDER = "DialogueSafety/ChatGPT_gen/0301/zero_shot"


def out_of_fold(examples, folds: int, seed: int) -> np.ndarray:
    """(n, 8) probabilities, each row from a baseline that never saw that item."""
    from sklearn.model_selection import StratifiedGroupKFold

    from mhsafety.registry import create_classifier

    groups = {}
    group_ids = [groups.setdefault(" ".join(ex.context.split()), len(groups)) for ex in examples]
    labels = [ex.label for ex in examples]
    probs = np.full((len(examples), 8), np.nan)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train_idx, test_idx) in enumerate(splitter.split(examples, labels, group_ids)):
        started = time.perf_counter()
        model = create_classifier("baseline", seed=seed).fit([examples[i] for i in train_idx])
        probs[test_idx] = model.predict_proba([examples[i] for i in test_idx])
        print(f"fold {k + 1}/{folds}: trained on {len(train_idx)}, scored {len(test_idx)} in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return probs, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "test.json")
    parser.add_argument("--release", type=Path, default=SHARED / "upstream-release.tar.xz")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--judge-latency", type=float, default=0.3,
                        help="simulated seconds per judge answer")
    parser.add_argument("--bands", default="0.1,0.9 0.2,0.8 0.3,0.7 0.4,0.6 0.2,0.6 0.3,0.5 "
                                            "0.4,0.5 0,1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mhsafety.classifiers.base import Classifier
    from mhsafety.data import load_examples
    from mhsafety.guard import DEFAULT_THRESHOLD, Guard, ModelTier, calibrate_cascade
    from mhsafety.registry import create_classifier
    from mhsafety.taxonomy import SAFE_LABEL
    from mhsafety.testing.fakeserver import FakeServer, ReplayResponder

    examples = load_examples(args.data)
    probs, last_model = out_of_fold(examples, args.folds, args.seed)
    # Keyed by text: the guard hands models positions, not the callers' ids.
    by_item = {(ex.context, ex.response): row for ex, row in zip(examples, probs)}

    class CrossFitted(Classifier):
        """The out-of-fold probabilities, looked up by item (timing: the last fold's
        model scores the item too, so the first tier's latency is a real baseline call)."""

        kind = "baseline-cross-fitted"

        def fit(self, train, dev=None):
            return self

        def predict_proba(self, batch):
            last_model.predict_proba(batch)  # the real cost of a baseline call
            return np.array([by_item[(ex.context, ex.response)] for ex in batch])

        def save_state(self, directory):
            raise NotImplementedError

        @classmethod
        def load_state(cls, directory, manifest):
            raise NotImplementedError

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "xJf", str(args.release), "-C", tmp], check=True)
        responder = ReplayResponder(Path(tmp) / RELEASE_FOLDER)
        with FakeServer(responder, latency=args.judge_latency) as server:
            judge = create_classifier(f"judge:gpt-3.5-turbo@{server.url}", seed=0, rounds=1,
                                      concurrency=32, timeout=30)
            guard = Guard.around(ModelTier(CrossFitted()))
            started = time.perf_counter()
            report = calibrate_cascade(guard, ModelTier(judge), examples, args.bands.split())
            elapsed = time.perf_counter() - started
    unsafe = np.array([ex.label != SAFE_LABEL for ex in examples])
    first_flag = probs[:, SAFE_LABEL] < DEFAULT_THRESHOLD
    baseline_alone = {"unsafe_recall": float((first_flag & unsafe).sum() / unsafe.sum()),
                      "false_alarm_rate": float((first_flag & ~unsafe).sum() / (~unsafe).sum())}
    figures = {"protocol": __doc__.split("Protocol")[1].split("python benchmarks")[0].strip(),
               "judge_latency_s": args.judge_latency, "wall_s": elapsed,
               f"baseline_alone_at_{DEFAULT_THRESHOLD:g}": baseline_alone, **report.to_dict()}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{report.n_items} items ({report.n_unsafe} unsafe, {report.n_safe} safe); "
          f"{report.rule_hits} decided by rules; baseline {report.first_latency_ms:.1f} ms, "
          f"judge {report.second_latency_ms:.1f} ms per single-item call (simulated answer "
          f"latency {args.judge_latency:g} s); baseline alone at {DEFAULT_THRESHOLD:g}: unsafe "
          f"recall {100 * baseline_alone['unsafe_recall']:.1f} %, false alarms "
          f"{100 * baseline_alone['false_alarm_rate']:.1f} %")
    print(report.table())


if __name__ == "__main__":
    main()
