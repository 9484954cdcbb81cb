"""The leaderboard on the public test set with every system that runs here, and how long it takes.

Systems (nothing scores an item it was trained on):
- the offline baseline, cross-fitted (5 context-grouped folds, seed 42);
- the paper's released outputs (six systems, five runs each), rows labelled "paper";
- an LLM judge behind the bundled fake server replaying the release's real gpt-3.5-turbo-0301
  zero-shot answers (five rounds, the paper's parser);
- a judge on a fake server answering the gold label (the ceiling), and one answering a wrong
  label every ``--noise``-th request (three rounds: self-consistency below 1);
- with ``--panel``, a panel of them all.

    python benchmarks/bench_leaderboard.py                    # writes runs/leaderboard/bench
    python benchmarks/bench_leaderboard.py --panel weighted --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "dialogue-safety"
RELEASE_FOLDER = "DialogueSafety/ChatGPT_gen/0301/zero_shot"


def noisy(responder, every: int):
    """``responder``'s answers, every ``every``-th request's label moved one label on."""
    from mhsafety.taxonomy import LABEL_NAMES

    count = [0]

    def answer(prompt, body):
        count[0] += 1
        right = responder(prompt, body)
        if count[0] % every or right not in LABEL_NAMES:
            return right
        return LABEL_NAMES[(LABEL_NAMES.index(right) + 1) % len(LABEL_NAMES)]

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "test.json")
    parser.add_argument("--release", type=Path, default=SHARED / "upstream-release.tar.xz")
    parser.add_argument("--noise", type=int, default=4)
    parser.add_argument("--panel", choices=("majority", "weighted"), default=None)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "leaderboard" / "bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import subprocess

    from mhsafety.data import load_examples
    from mhsafety.leaderboard import LeaderboardSettings, run_leaderboard
    from mhsafety.testing import FakeServer, GoldResponder, ReplayResponder

    examples = load_examples(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "xJf", str(args.release), "-C", tmp], check=True)
        replay = ReplayResponder(Path(tmp) / RELEASE_FOLDER)
        with FakeServer(GoldResponder(examples)) as gold, \
                FakeServer(noisy(GoldResponder(examples), args.noise)) as noise, \
                FakeServer(replay) as replayed:
            settings = LeaderboardSettings(
                systems=["baseline", f"paper:{Path(tmp) / 'DialogueSafety'}",
                         f"Replayed ChatGPT-0301 zero-shot=judge:gpt-3.5-turbo-0301@{replayed.url}",
                         f"Gold judge (fake)=judge:fake@{gold.url}",
                         f"Noisy judge (fake)=judge:fake@{noise.url}"],
                data=str(args.data), panel=args.panel, resamples=args.resamples,
                config={"judge.concurrency": 64, "Replayed ChatGPT-0301 zero-shot.parser": "paper",
                        "Gold judge (fake).rounds": 1, "Noisy judge (fake).rounds": 3})
            started = time.perf_counter()
            result = run_leaderboard(settings, args.out, force=False,
                                     log=lambda m: print(m, file=sys.stderr))
            seconds = time.perf_counter() - started
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"seconds": round(seconds, 1), "load": load,
                          "rows": [r.to_dict() for r in result.rows]}, ensure_ascii=False))
        return
    print((args.out / "table.md").read_text(encoding="utf-8"))
    print(f"{seconds:.0f} s in all (load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}); "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
