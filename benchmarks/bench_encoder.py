"""Speed of the encoder classifier at real size: a BERT-base-size model on CPU (and on a GPU).

The model is randomly initialised with bert-base-chinese's configuration (12 layers, hidden
768, 12 heads, vocabulary 21,128; weights do not change speed) and a WordPiece tokenizer
whose 21,128 tokens are the characters of the data plus filler, built in a temporary folder.
Over items drawn (seeded) from the 800 public items, it measures on this machine's CPU:

  * prediction, one item at a time vs batched and length-sorted (PyTorch fp32), items/s;
  * batched prediction with PyTorch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 (dynamic
    quantization), at the same batch size, items/s;
  * training, real tokens/s over a few optimizer steps: dynamic padding with length-grouped
    batches (the default) vs every batch padded to 512;
  * with ``--guard``, the guard service (``mhsafety serve``) under 32 concurrent clients on
    the PyTorch and on the ONNX int8 checkpoint, via benchmarks/bench_guard.py.

At this size a 2-core CPU predicts about one item per second, so item counts are small
(``--items``, ``--single``, ``--train-steps``) and the whole run takes minutes; the counts
are printed with every figure. Ratios come from one run, measured back to back.

With ``--gpu`` it measures instead, on a CUDA device: one training epoch over 7,135 items (the
size of the paper's training set; the public items cycled, so lengths are realistic) in
bf16, and batched bf16 prediction items/s over the 800 items. Without a GPU it says so and
exits 0.

Usage (from the repository root):
    python benchmarks/bench_encoder.py --data ../shared/data/dialogue-safety/test.json
    python benchmarks/bench_encoder.py --guard --json runs/bench-encoder.json
    python benchmarks/bench_encoder.py --gpu
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
TEST_JSON = REPO.parent / "shared" / "data" / "dialogue-safety" / "test.json"
VOCAB_SIZE = 21_128  # bert-base-chinese
RESULTS: dict[str, object] = {}


def say(text: str) -> None:
    print(text, flush=True)


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def build_bert_base_size(folder: Path, texts: list[str]) -> Path:
    """A random BERT with bert-base-chinese's shape and a 21,128-token WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + \
        ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({ch for text in texts for ch in text.lower() if not ch.isspace()}
                   | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    tokens = specials + [c for c in chars if c not in specials]
    tokens += [f"##filler{i}" for i in range(VOCAB_SIZE - len(tokens))]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = BertTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=VOCAB_SIZE, pad_token_id=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_checkpoint(model_dir: Path, examples: list, target: Path) -> Path:
    """An encoder checkpoint of the random model (one optimizer step on 2 short items: the
    public way to a classifier with a head; its scores mean nothing)."""
    from mhsafety.registry import create_classifier

    short = sorted(examples, key=lambda e: len(e.context) + len(e.response))[:2]
    clf = create_classifier(f"encoder:{model_dir}", seed=42, dev_ratio=0, batch_size=2,
                            max_steps=1, epochs=1, work_dir=None)
    return clf.fit(short).save(target)


def items_per_s(predict, batches: list[list]) -> float:
    started = time.perf_counter()
    n = 0
    for batch in batches:
        predict(batch)
        n += len(batch)
    return n / (time.perf_counter() - started)


def bench_predict(ckpt: Path, onnx_fp32: Path, onnx_int8: Path, sample: list, single: int,
                  batch_size: int) -> None:
    from mhsafety.registry import load_classifier

    torch_clf = load_classifier(ckpt)
    torch_clf.config.update(runtime="torch", eval_batch_size=batch_size)
    torch_clf.predict_proba(sample[:2])  # warm-up: weights loaded, first call paid
    tokens = sum(len(f["input_ids"]) for f in torch_clf.encode(sample))
    say(f"items: {len(sample)} drawn from the public set (seed 0), {tokens / len(sample):.0f} "
        f"tokens on average; batch size {batch_size}; PyTorch {torch_threads()} threads")

    one = items_per_s(torch_clf.predict_proba, [[ex] for ex in sample[:single]])
    batched = items_per_s(torch_clf.predict_proba, [sample])
    say(f"predict, PyTorch fp32, one item at a time: {one:7.2f} items/s ({single} items)")
    say(f"predict, PyTorch fp32, batched + length-sorted: {batched:7.2f} items/s "
        f"({len(sample)} items)")
    say(f"  speed-up of batching: {batched / one:.2f}x (target >= 5x)")
    RESULTS["predict"] = {"one_at_a_time_items_per_s": one, "one_at_a_time_items": single,
                          "batched_items_per_s": batched, "batched_items": len(sample),
                          "batch_size": batch_size, "mean_tokens": tokens / len(sample),
                          "batching_speedup": batched / one}

    rates = {"torch_fp32": batched}
    for name, folder in (("onnx_fp32", onnx_fp32), ("onnx_int8", onnx_int8)):
        clf = load_classifier(folder)
        clf.config.update(runtime="onnx", eval_batch_size=batch_size)
        clf.predict_proba(sample[:2])
        rates[name] = items_per_s(clf.predict_proba, [sample])
        say(f"predict, ONNX Runtime {name[5:]}, batched + length-sorted: {rates[name]:7.2f} "
            f"items/s ({len(sample)} items)")
        if name == "onnx_int8":
            one_int8 = items_per_s(clf.predict_proba, [[ex] for ex in sample[:single]])
            say(f"predict, ONNX Runtime int8, one item at a time: {one_int8:7.2f} items/s "
                f"({single} items)")
            rates["onnx_int8_one_at_a_time"] = one_int8
    say(f"  ONNX fp32 / PyTorch fp32: {rates['onnx_fp32'] / batched:.2f}x; ONNX int8 / "
        f"PyTorch fp32: {rates['onnx_int8'] / batched:.2f}x (target >= 2x)")
    RESULTS["runtimes_items_per_s"] = rates


def bench_train(model_dir: Path, examples: list, steps: int, batch: int) -> None:
    from mhsafety.registry import create_classifier

    results = {}
    for name, cfg in [("dynamic padding + length grouping", {"group_by_length": True}),
                      ("every batch padded to 512", {"pad_to_max_length": True,
                                                     "group_by_length": False})]:
        clf = create_classifier(f"encoder:{model_dir}", seed=42, dev_ratio=0, epochs=1,
                                batch_size=batch, max_steps=steps, work_dir=None, **cfg)
        clf.fit(examples)
        row = clf.history[-1]
        results[name] = {"tokens_per_s": row["tokens"] / row["seconds"],
                         "positions": row["positions"], "tokens": row["tokens"],
                         "seconds": row["seconds"], "steps": row["steps"]}
        say(f"train, {name:<34}: {results[name]['tokens_per_s']:7.1f} real tokens/s "
            f"({row['steps']} steps of {batch}, {row['positions']} positions for "
            f"{row['tokens']} tokens, {row['seconds']:.1f} s)")
    ratio = (results["dynamic padding + length grouping"]["tokens_per_s"]
             / results["every batch padded to 512"]["tokens_per_s"])
    say(f"  speed-up of dynamic padding + length grouping: {ratio:.2f}x")
    RESULTS["train"] = {**results, "speedup": ratio, "batch_size": batch}


def bench_guard(ckpt: Path, onnx_int8: Path, data: Path, clients: int, requests: int,
                warmup: int, server_args: list[str]) -> None:
    out = {}
    for name, folder in (("torch_fp32", ckpt), ("onnx_int8", onnx_int8)):
        cmd = [sys.executable, str(REPO / "benchmarks" / "bench_guard.py"), "--checkpoint",
               str(folder), "--data", str(data), "--clients", str(clients), "--requests",
               str(requests), "--warmup", str(warmup), "--json",
               *[f"--server-arg={a}" for a in server_args]]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            say(f"guard, {name}: bench_guard.py failed:\n{done.stderr[-2000:]}")
            continue
        figures = json.loads(done.stdout[done.stdout.index("{"):])
        out[name] = figures
        say(f"guard, {name}, {clients} clients, {figures['requests']} single-item requests: "
            f"{figures['requests_per_s']:.2f} requests/s, p50 {figures['p50_ms']:.0f} ms, "
            f"p99 {figures['p99_ms']:.0f} ms, {figures['errors']} errors")
    RESULTS["guard"] = {**out, "server_args": server_args}


def bench_gpu(model_dir: Path, examples: list, items: int, batch_size: int) -> None:
    import torch

    from mhsafety.registry import create_classifier

    data = [examples[i % len(examples)] for i in range(items)]
    clf = create_classifier(f"encoder:{model_dir}", seed=42, dev_ratio=0, epochs=1,
                            batch_size=16, precision="bf16", device="cuda",
                            eval_batch_size=batch_size, work_dir=None)
    started = time.perf_counter()
    clf.fit(data)
    total = time.perf_counter() - started
    row = clf.history[-1]
    say(f"gpu train, BERT-base size, {items} items, batch 16, bf16, "
        f"{torch.cuda.get_device_name()}: {row['seconds']:.1f} s for the epoch "
        f"({total:.1f} s with loading), {row['tokens'] / row['seconds']:.0f} real tokens/s")
    clf.predict_proba(examples[:batch_size])  # warm-up
    torch.cuda.synchronize()
    rate = items_per_s(clf.predict_proba, [examples])
    say(f"gpu predict, bf16, batched ({batch_size}) + length-sorted: {rate:.0f} items/s over "
        f"{len(examples)} items")
    RESULTS["gpu"] = {"device": torch.cuda.get_device_name(), "epoch_items": items,
                      "epoch_seconds": row["seconds"],
                      "train_tokens_per_s": row["tokens"] / row["seconds"],
                      "predict_items_per_s": rate, "predict_items": len(examples)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=TEST_JSON)
    parser.add_argument("--items", type=int, default=64,
                        help="items predicted batched, per runtime (default 64)")
    parser.add_argument("--single", type=int, default=16,
                        help="of those, items predicted one at a time (default 16)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="prediction batch size, the same for every runtime (default 16)")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--guard", action="store_true",
                        help="also load-test the guard service on both checkpoints")
    parser.add_argument("--guard-clients", type=int, default=32)
    parser.add_argument("--guard-requests", type=int, default=96)
    parser.add_argument("--guard-warmup", type=int, default=32)
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `mhsafety serve` argument for --guard (repeatable)")
    parser.add_argument("--gpu", action="store_true",
                        help="measure on a CUDA GPU instead: one bf16 epoch + prediction")
    parser.add_argument("--gpu-items", type=int, default=7135)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    from mhsafety.data import load_examples

    examples = load_examples(args.data)
    if args.gpu and not torch.cuda.is_available():
        say("no GPU present (torch.cuda.is_available() is False): the GPU benchmark was not "
            "run; run this on a machine with a CUDA GPU")
        return
    say(f"torch {torch.__version__}, {os.cpu_count()} CPUs visible, load average "
        f"{load_average()} (1/5/15 min) at start")
    RESULTS.update(torch=torch.__version__, cpus=os.cpu_count(), load_start=load_average(),
                   data=str(args.data))
    texts = [e.context + e.response for e in examples]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        model_dir = build_bert_base_size(root / "bert-base-size", texts)
        say(f"built a random 12-layer, hidden-768, 21,128-token BERT in "
            f"{time.perf_counter() - started:.0f} s")
        if args.gpu:
            bench_gpu(model_dir, examples, args.gpu_items, 64)
        else:
            from mhsafety.classifiers.encoder_export import export_onnx

            ckpt = make_checkpoint(model_dir, examples, root / "ckpt-torch")
            fp32 = shutil.copytree(ckpt, root / "ckpt-onnx-fp32")
            int8 = shutil.copytree(ckpt, root / "ckpt-onnx-int8")
            started = time.perf_counter()
            export_onnx(fp32)
            export_onnx(int8, quantize="int8")
            say(f"exported ONNX fp32 and int8 in {time.perf_counter() - started:.0f} s "
                f"({(int8 / 'model.int8.onnx').stat().st_size / 2**20:.0f} MiB int8, "
                f"{(fp32 / 'model.onnx').stat().st_size / 2**20:.0f} MiB fp32)")
            sample = random.Random(0).sample(list(examples), min(args.items, len(examples)))
            bench_predict(ckpt, fp32, int8, sample, min(args.single, len(sample)),
                          args.batch_size)
            bench_train(model_dir, list(examples), args.train_steps, args.train_batch)
            if args.guard:
                bench_guard(ckpt, int8, args.data, args.guard_clients, args.guard_requests,
                            args.guard_warmup, args.server_arg)
    RESULTS["load_end"] = load_average()
    say(f"load average {load_average()} at the end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(RESULTS, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")


if __name__ == "__main__":
    main()
