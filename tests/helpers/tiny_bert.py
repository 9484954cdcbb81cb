"""A tiny random BERT (2 layers, hidden 32) with a character vocabulary, built offline.

Used by the encoder tests and by benchmarks/bench_encoder.py: no pretrained weights can be
downloaded, so the real code path runs on this stand-in. The vocabulary holds BERT's special
tokens, ``[unused1]``/``[unused2]`` (unless ``unused_slots=False``) and every character of the
given texts, so a fast WordPiece tokenizer splits Chinese text into known characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def build_tiny_bert(directory: str | Path, texts: Iterable[str], *, unused_slots: bool = True,
                    hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Write a random BertModel and its tokenizer into ``directory``; returns it."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    if unused_slots:
        specials[1:1] = ["[unused1]", "[unused2]"]
    chars: set[str] = set("abcdefghijklmnopqrstuvwxyz0123456789")
    for text in texts:
        chars.update(ch for ch in text.lower() if not ch.isspace())
    tokens = specials + sorted(chars - set(specials))
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = BertTokenizerFast(vocab=vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=512, pad_token_id=vocab["[PAD]"])
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    model = BertModel(config)
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in test logs
    try:
        model.save_pretrained(directory)
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(directory)
    return directory


def main() -> None:
    """``python tests/helpers/tiny_bert.py --data FILE --out DIR``: a stand-in model for
    trying the encoder commands without downloading weights."""
    import argparse

    from mhsafety.data import load_examples

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", required=True, help="dataset whose characters make the vocabulary")
    parser.add_argument("--out", required=True, help="folder to write the model into")
    parser.add_argument("--no-unused-slots", action="store_true",
                        help="leave [unused1]/[unused2] out of the vocabulary")
    args = parser.parse_args()
    texts = [ex.context + ex.response for ex in load_examples(args.data)]
    folder = build_tiny_bert(args.out, texts, unused_slots=not args.no_unused_slots)
    print(f"wrote a tiny random BERT to {folder}")


if __name__ == "__main__":
    main()
