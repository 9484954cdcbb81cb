"""Near-duplicate detection of the overlap check (issue 20): for each alteration that changes
no meaning, the share of the 800 test items whose altered copy :func:`mhsafety.data.find_overlap`
still finds among the originals; and the false-positive side: how many distinct items of the
set collapse into one fingerprint, with the whitespace-only fingerprint (version 1) and the
current one.

    python benchmarks/bench_overlap.py --data ../shared/data/dialogue-safety/test.json
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections import Counter
from collections.abc import Callable

from mhsafety.data import (
    Example,
    examples_from_items,
    find_overlap,
    item_fingerprints,
    load_examples,
    shared_ids,
)

_TAG = re.compile(r"\[(seeker|supporter)\]")
_FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "!\"#%&'()*+,-./:;<=>?@[]^_`{|}~"}


def _both(change: Callable[[str], str]) -> Callable[[Example], Example]:
    return lambda ex: Example(change(ex.context), change(ex.response), ex.label, ex.id)


def _zero_width(text: str) -> str:
    # U+200B after every fourth character and a BOM in front.
    return "\ufeff" + "".join(c + ("\u200b" if i % 4 == 3 else "") for i, c in enumerate(text))


def _cjk_punctuation_spacing(text: str) -> str:
    # Half-width sentence punctuation with a space after it, as an English keyboard types it.
    for cjk, ascii_ in (("，", ", "), ("。", ". "), ("？", "? "), ("！", "! "), ("：", ": "),
                        ("；", "; "), ("、", ", ")):
        text = text.replace(cjk, ascii_)
    return text


ALTERATIONS: dict[str, Callable[[Example], Example]] = {
    "NFKC applied to the text": _both(lambda t: unicodedata.normalize("NFKC", t)),
    "a space after each role tag": _both(lambda t: _TAG.sub(r"[\1] ", t)),
    "tag case changed ([Seeker], [SUPPORTER])": _both(
        lambda t: t.replace("[seeker]", "[Seeker]").replace("[supporter]", "[SUPPORTER]")),
    "NFKC-changing (full-width letters/digits, ideographic space)": _both(
        lambda t: "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else
                          "\u3000" if c == " " else c for c in t)),
    "ASCII → full-width punctuation": _both(lambda t: _TAG.sub(
        lambda m: "\0" + m.group(1) + "\1", t).translate(_FULL_WIDTH)
        .replace("\0", "[").replace("\1", "]")),
    "own: zero-width spaces and a BOM": _both(_zero_width),
    "own: CJK punctuation as ASCII + space, line breaks between turns": _both(
        lambda t: _TAG.sub(r"\n[\1]", _cjk_punctuation_spacing(t))),
}


def collisions(examples: list[Example], version: int) -> int:
    """Items sharing a fingerprint with an earlier, different item of the set."""
    counts = Counter(item_fingerprints(examples, version))
    return sum(c - 1 for c in counts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the 800-item test.json")
    args = parser.parse_args()
    examples = load_examples(args.data)
    n = len(examples)
    print("| alteration | changed items | detected (whitespace-only fingerprint, v1) "
          "| detected (current, v2) | share |")
    print("|---|---:|---:|---:|---:|")
    for name, alter in ALTERATIONS.items():
        # Through the reader, as a file would arrive (it adds tags it does not recognise).
        altered = examples_from_items([alter(ex).to_dict() for ex in examples], name)
        changed = sum(a.context != e.context or a.response != e.response
                      for a, e in zip(altered, examples))
        old = len(shared_ids(item_fingerprints(examples, 1), altered, 1))
        found = len(find_overlap(examples, altered))
        print(f"| {name} | {changed} | {old}/{n} | {found}/{n} | {100 * found / n:.2f} % |")
    exact = len(examples) - len({(e.context, e.response) for e in examples})
    print()
    print(f"collisions within the {n} items (items sharing a fingerprint with another): "
          f"identical (context, response) {exact}; version 1 (whitespace only) "
          f"{collisions(examples, 1)}; current {collisions(examples, 2)}")


if __name__ == "__main__":
    main()
