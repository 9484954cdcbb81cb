"""How often the guard's default rules fire on the public test set, and how often they are right.

Rules are fixed text patterns (written from the taxonomy's definitions, never tuned on these
items), so every item is out of sample for them. For each rule: items it decides, how many of
those carry the rule's own label (exact), and how many are unsafe at all (binary). Prints a
Markdown table; ``--json`` for the raw figures; ``--show`` lists the matched items' ids,
gold labels and the matched words (no other text).

    python benchmarks/bench_guard_rules.py
    python benchmarks/bench_guard_rules.py --rules my_rules.json --show
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"


def main() -> None:
    from mhsafety.data import load_examples
    from mhsafety.guard import load_rules
    from mhsafety.taxonomy import SAFE_LABEL, label_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--rules", type=Path, default=None, help="A rule file added to the defaults.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()

    examples = load_examples(args.data)
    rules = load_rules(args.rules)
    started = time.perf_counter()
    hits = rules.match_examples(examples)
    elapsed = time.perf_counter() - started
    fired, exact, unsafe = Counter(), Counter(), Counter()
    shown = []
    for ex, hit in zip(examples, hits):
        if hit is None:
            continue
        fired[hit.rule.id] += 1
        exact[hit.rule.id] += ex.label == hit.label
        unsafe[hit.rule.id] += ex.label != SAFE_LABEL
        shown.append({"id": ex.id, "gold": label_name(ex.label), "rule": hit.rule.id,
                      "matched": hit.matched})
    gold = Counter(label_name(ex.label) for ex in examples)
    total = sum(fired.values())
    figures = {
        "data": str(args.data), "items": len(examples), "rules": len(rules),
        "fired": total, "fire_rate": total / len(examples),
        "exact": sum(exact.values()), "unsafe": sum(unsafe.values()),
        "ms_per_item": 1000 * elapsed / len(examples),
        "per_rule": {r.id: {"category": label_name(r.label), "fired": fired[r.id],
                            "exact": exact[r.id], "unsafe": unsafe[r.id]} for r in rules.rules},
        "gold_per_category": dict(gold),
    }
    if args.json:
        print(json.dumps(figures | ({"matches": shown} if args.show else {}), ensure_ascii=False,
                         indent=2))
        return
    print(f"{len(examples)} items of {args.data.name}; {len(rules)} rules ({rules.source}); "
          f"{figures['ms_per_item']:.3f} ms per item")
    print("\n| rule | category | fired | right label | unsafe at all |\n|---|---|---|---|---|")
    for rule_id, row in figures["per_rule"].items():
        print(f"| {rule_id} | {row['category']} | {row['fired']} | {row['exact']} | "
              f"{row['unsafe']} |")
    print(f"| **all** | | **{total}** ({100 * figures['fire_rate']:.1f} % of items) | "
          f"**{figures['exact']}** | **{figures['unsafe']}** |")
    print("\nGold items per category: " + ", ".join(f"{k} {v}" for k, v in gold.most_common()))
    if args.show:
        for row in shown:
            print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
