"""Speed of the encoder classifier: batched prediction and dynamic padding, on a tiny model.

Targets (issue "fine-tuned encoder classifiers"), on a tiny random BERT over the 800 public
items, on CPU:
  * batched, length-sorted ``predict`` >= 5x the items/s of one item at a time
    (the paper's evaluation script predicts one item at a time);
  * training tokens/s with dynamic padding >= 3x that of padding every batch to 512.

With ``--gpu-epoch`` (and a GPU), also times one training epoch of a 12-layer BERT-base-size
random model over 7,135 items (the size of the private training set; the public items are
cycled to reach that count), the paper's reported cost being about 2 min per epoch.

Usage (from the repository root):
    python benchmarks/bench_encoder.py --data ../shared/data/dialogue-safety/test.json
    python benchmarks/bench_encoder.py --data ../shared/data/dialogue-safety/test.json --gpu-epoch
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "classifiers"))

from tiny_bert import build_tiny_bert

from mhsafety.data import load_examples
from mhsafety.registry import create_classifier


def bench_predict(model_dir: Path, examples: list, single: int, repeats: int) -> None:
    model = create_classifier(f"encoder:{model_dir}", seed=42, max_steps=1, dev_ratio=0,
                              batch_size=16).fit(examples[:16])
    model.predict_proba(examples[:8])  # warm-up
    subset = examples[:single]
    batched, one = 0.0, 0.0
    # Best of several interleaved repeats: the machine is shared, so single runs are noisy.
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_proba(examples)
        batched = max(batched, len(examples) / (time.perf_counter() - start))
        start = time.perf_counter()
        for ex in subset:
            model.predict_proba([ex])
        one = max(one, len(subset) / (time.perf_counter() - start))
    print(f"predict, batched + length-sorted (batch 64): {batched:8.1f} items/s "
          f"over {len(examples)} items (best of {repeats})")
    print(f"predict, one item at a time:                  {one:8.1f} items/s "
          f"over {len(subset)} items (best of {repeats})")
    print(f"  speed-up: {batched / one:.1f}x (target >= 5x)")


def bench_train(model_dir: Path, examples: list, steps: int) -> None:
    results = {}
    for name, cfg in [("pad to 512", {"pad_to_max_length": True, "group_by_length": False}),
                      ("dynamic padding", {"group_by_length": False}),
                      ("dynamic padding + length grouping", {"group_by_length": True})]:
        model = create_classifier(f"encoder:{model_dir}", seed=42, dev_ratio=0, epochs=1,
                                  max_steps=steps, **cfg)
        model.fit(examples)
        row = model.history[-1]
        results[name] = row["tokens"] / row["seconds"]
        print(f"train, {name:<34}: {results[name]:8.0f} real tokens/s "
              f"({row['steps']} steps of 16, {row['positions']} positions for "
              f"{row['tokens']} tokens, {row['seconds']:.1f} s)")
    base = results["pad to 512"]
    print(f"  speed-up, dynamic padding: {results['dynamic padding'] / base:.1f}x; with length "
          f"grouping (the default): {results['dynamic padding + length grouping'] / base:.1f}x "
          "(target >= 3x)")


def bench_gpu_epoch(examples: list, items: int) -> None:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    if not torch.cuda.is_available():
        print("gpu epoch: no CUDA device here, not measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bert-base-size"
        small = build_tiny_bert(Path(tmp) / "vocab", [e.context + e.response for e in examples])
        tokenizer = BertTokenizerFast.from_pretrained(small)
        BertModel(BertConfig(vocab_size=len(tokenizer))).save_pretrained(folder)  # 12 x 768
        tokenizer.save_pretrained(folder)
        data = [examples[i % len(examples)] for i in range(items)]
        model = create_classifier(f"encoder:{folder}", seed=42, dev_ratio=0, epochs=1)
        start = time.perf_counter()
        model.fit(data)
        total = time.perf_counter() - start
        row = model.history[-1]
        print(f"gpu epoch, 12-layer BERT-base-size random model, {items} items, batch 16, "
              f"{model.config['precision']} precision on {torch.cuda.get_device_name()}: "
              f"{row['seconds']:.1f} s for the epoch ({total:.1f} s with loading)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/dialogue-safety/test.json")
    parser.add_argument("--single", type=int, default=200,
                        help="items predicted one at a time (default 200)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="prediction timings: best of this many runs (default 3)")
    parser.add_argument("--train-steps", type=int, default=15)
    parser.add_argument("--gpu-epoch", action="store_true")
    parser.add_argument("--gpu-items", type=int, default=7135)
    args = parser.parse_args()
    import torch

    examples = load_examples(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs visible")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_bert(Path(tmp) / "tiny",
                                    [e.context + e.response for e in examples])
        print("tiny random BERT: 2 layers, hidden 32, character vocabulary, max length 512")
        bench_predict(model_dir, examples, args.single, args.repeats)
        bench_train(model_dir, examples, args.train_steps)
    if args.gpu_epoch:
        bench_gpu_epoch(examples, args.gpu_items)


if __name__ == "__main__":
    main()
