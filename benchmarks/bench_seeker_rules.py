"""How often the seeker rules fire on the public test set's contexts, with every firing listed.

The seeker rule tier (``mhsafety.guard.seeker_rules``) screens the seeker's turns of a
conversation for current suicide or self-harm risk. This runs it on the seeker turns of every
context of the 800-item test set (each context screened as one conversation, as a gateway
screens a request) and prints the share of contexts at each level, then every firing —
context id, rule, level, and the seeker turn it matched, for a person to read — and every
discounted match (negated, past, reported, media) with the qualifier that discounted it.

The test set has no risk labels, so this is a firing rate, not an accuracy: read the
listing. The rules were written from the definitions in the module docstring; the listing was
read to remove false positives, so this set is not out of sample for the test contexts.

    python benchmarks/bench_seeker_rules.py
    python benchmarks/bench_seeker_rules.py --rules team_rules.json --json
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
    from mhsafety.guard.seeker_rules import RISK_LEVELS, load_seeker_rules

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--rules", type=Path, default=None,
                        help="A seeker rule file added to the defaults.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    examples = load_examples(args.data)
    rules = load_seeker_rules(args.rules)
    started = time.perf_counter()
    screens = [rules.screen(ex.turns) for ex in examples]
    elapsed = time.perf_counter() - started
    levels = Counter(s.level for s in screens)
    fired, discounted = [], []
    for ex, screen in zip(examples, screens):
        turns = ex.turns
        for finding, out in [(f, fired) for f in screen.findings] + \
                [(f, discounted) for f in screen.discounted]:
            span = finding.spans[0]
            row = {"id": ex.id, "rule": finding.rule_id, "level": finding.level,
                   "matched": turns[span.turn].text[span.start:span.end],
                   "turn": turns[span.turn].text}
            if not finding.current:
                row["qualifier"] = finding.discounted_by
            out.append(row)
    n = len(examples)
    any_fire = sum(s.level != "none" for s in screens)
    seeker_turns = sum(t.role == "seeker" for ex in examples for t in ex.turns)
    figures = {"data": str(args.data), "contexts": n, "seeker_turns": seeker_turns,
               "rules": len(rules), "source": rules.source,
               "levels": {lvl: levels[lvl] for lvl in RISK_LEVELS},
               "fire_rate": any_fire / n, "at_risk_rate": sum(s.at_risk for s in screens) / n,
               "ms_per_context": 1000 * elapsed / n, "firings": fired,
               "discounted": discounted}
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    print(f"{n} contexts ({seeker_turns} seeker turns) of {args.data.name}; {len(rules)} rules "
          f"({rules.source}); {figures['ms_per_context']:.3f} ms per context")
    print("\n| level | contexts | share |\n|---|---|---|")
    for lvl in RISK_LEVELS:
        print(f"| {lvl} | {levels[lvl]} | {100 * levels[lvl] / n:.1f} % |")
    print(f"\nAny level above none: {any_fire} of {n} ({100 * figures['fire_rate']:.1f} %); "
          f"high or imminent: {100 * figures['at_risk_rate']:.1f} %")
    print(f"\nFirings ({len(fired)}): id | rule | level | matched | turn")
    for row in fired:
        print(f"{row['id']} | {row['rule']} | {row['level']} | {row['matched']} | {row['turn']}")
    print(f"\nDiscounted ({len(discounted)}): id | rule | qualifier | matched | turn")
    for row in discounted:
        print(f"{row['id']} | {row['rule']} | {row['qualifier']} | {row['matched']} | "
              f"{row['turn']}")


if __name__ == "__main__":
    main()
