"""How often a streamed reply is blocked after part of it was sent, per hold-back size.

The gateway streams a reply while screening it (``mhsafety.guard.streaming``): the reply
rules on every piece, a window model every W characters, an end-of-reply decision on the
whole reply, with the last H characters held back. This replays the 800 test replies through
that state machine, in pieces of ``--piece-chars`` characters (2 by default, about one
token of Chinese text), and prints, per hold-back size H, the share of replies the
end-of-reply decision blocks whose text had already been partly sent when the stream was
blocked.

Stand-ins, stated plainly (no trained model is scored here, so no figure flatters one):

- end-of-reply decision: the gold label, through the default policy (a reply is blocked when
  its category's action is not "allow": every unsafe category under the default policy);
- rules: the guard's default reply rules (``guard/data/default_rules.json``), for real;
- window model, two bounds: "none" (no window model: only the rules can act before the end)
  and "oracle" (a perfect window model that flags an unsafe reply at its first window check,
  i.e. once W characters have arrived). A real model lies between the two.

    python benchmarks/bench_stream_holdback.py
    python benchmarks/bench_stream_holdback.py --hold-backs 0 8 16 32 64 --window-every 16
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"


def main() -> None:
    from mhsafety.data import load_examples
    from mhsafety.guard import DEFAULT_POLICY, default_rules
    from mhsafety.guard.streaming import StreamSettings, holdback_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--hold-backs", type=int, nargs="+", default=[0, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--piece-chars", type=int, default=2)
    parser.add_argument("--window-every", type=int, default=16)
    parser.add_argument("--window-chars", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    examples = load_examples(args.data)
    replies = [ex.response_text for ex in examples]
    end_blocks = [DEFAULT_POLICY.action_for(ex.label) != "allow" for ex in examples]
    rules = default_rules()
    settings = StreamSettings(0, args.window_every, args.window_chars)
    out = {"data": str(args.data), "replies": len(replies), "end_blocked": sum(end_blocks),
           "piece_chars": args.piece_chars, "window_every": args.window_every,
           "window_chars": args.window_chars,
           "reply_chars_median": statistics.median(len(r) for r in replies),
           "reply_chars_max": max(len(r) for r in replies), "tables": {}}
    for name, window in [("none", None), ("oracle", lambda i, text: end_blocks[i] or None)]:
        rows = holdback_table(replies, end_blocks, args.hold_backs, piece_chars=args.piece_chars,
                              rules=rules.match, window=window, settings=settings)
        out["tables"][name] = [{"hold_back": r.hold_back, "end_blocked": r.end_blocked,
                                "sent_before_block": r.sent_before_block, "share": r.share,
                                "released_chars_share": r.released_chars_share,
                                "blocked_by": r.blocked_by, "extra_blocks": r.extra_blocks}
                               for r in rows]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['replies']} replies of {args.data.name} (median {out['reply_chars_median']} "
          f"characters, longest {out['reply_chars_max']}); the end decision blocks "
          f"{out['end_blocked']}; pieces of {args.piece_chars} characters; window model every "
          f"{args.window_every} characters over the last {args.window_chars}")
    for name, rows in out["tables"].items():
        print(f"\nWindow model: {name}\n\n| hold-back H | blocked at the end | partly sent before "
              "the block | share | characters sent | first blocked by | rule blocks the end "
              "allows |\n|---|---|---|---|---|---|---|")
        for r in rows:
            tiers = ", ".join(f"{k} {v}" for k, v in sorted(r["blocked_by"].items()))
            print(f"| {r['hold_back']} | {r['end_blocked']} | {r['sent_before_block']} | "
                  f"{100 * r['share']:.1f} % | {100 * r['released_chars_share']:.1f} % | {tiers} | "
                  f"{r['extra_blocks']} |")


if __name__ == "__main__":
    main()
