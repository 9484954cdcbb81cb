"""Fine-tuned encoder classifiers (BERT / RoBERTa family), the paper's strongest systems.

``EncoderClassifier`` implements the one classifier interface over any Hugging Face encoder
(a hub name or a local folder). Training runs on :mod:`accelerate`, which brings mixed
precision, gradient accumulation and multi-process runs (``accelerate launch`` /
``torchrun``) without code of our own. Defaults are the paper's recipe (benchmark.md section
4); model selection uses a dev split, never the test set unless ``select_on_test`` says so.

A checkpoint folder holds the backbone and tokenizer as ordinary ``save_pretrained`` files,
the head as ``classifier_head.safetensors`` and the project's ``manifest.json`` (config, dev
metrics, data hashes); it is written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data import ROLE_MARKERS, Example, examples_hash, train_dev_split
from ..errors import DataError, UsageError
from ..progress import note
from ..records import NOTE_SELECTED_ON_TEST, NOTE_TEXTS, PredictionRecord
from ..settings import DEFAULT_SEED
from .base import Classifier
from .encoder_config import SELECT_METRICS, EncoderConfig

log = logging.getLogger(__name__)

# The note the paper's fine-tuned rows carry too, so tables mark our leaky runs like theirs.
TEST_SELECTION_NOTE = NOTE_TEXTS[NOTE_SELECTED_ON_TEST]


class EncoderClassifier(Classifier):
    """A Hugging Face encoder fine-tuned on (context, response) pairs."""

    kind = "encoder"
    config_class = EncoderConfig
    # Micro-batching the guard service should use for this kind unless told otherwise (names
    # of guard.service.ServiceConfig fields). A BERT-base-size encoder on a 2-core CPU scores
    # about one item a second, and batches of 16 score about 3x faster per item than single
    # items (docs/benchmarks/encoder.md): worth a few ms of waiting for company, while 16
    # bounds how long one model call (and so a request's wait behind it) takes.
    serving_defaults: ClassVar[dict[str, Any]] = {"max_model_batch": 16, "batch_wait_ms": 5.0}

    settings: EncoderConfig

    def __init__(self, settings: EncoderConfig | None = None, /, **config: Any) -> None:
        # None means "not given" (the CLI's unset options): the setting keeps its default.
        super().__init__(settings, **{k: v for k, v in config.items() if v is not None})
        self._model: Any = None
        self._tokenizer: Any = None
        self.markers: dict[str, str] = {}
        self.history: list[dict[str, Any]] = []
        self.dev_metrics: dict[str, Any] | None = None
        self.dev_data_sha256: str | None = None
        self.best_epoch: int | None = None
        self._work_folder: Path | None = None
        self._other_extra: dict[str, Any] = {}
        # A loaded checkpoint: its folder (torch weights load on first use, so a service on
        # the ONNX model never holds them), its ONNX record and the ONNX Runtime session.
        self._folder: Path | None = None
        self._onnx: dict[str, Any] | None = None
        self._onnx_scorer: Any = None

    @property
    def selects_on_test(self) -> bool:
        return self.settings.select_on_test

    @classmethod
    def from_spec(cls, argument: str, seed: int = DEFAULT_SEED, **config: Any) -> EncoderClassifier:
        if not argument:
            raise UsageError("the encoder system needs a model: encoder:NAME_OR_PATH, "
                             "e.g. encoder:bert-base-chinese or encoder:./my-model")
        config.pop("model", None)
        return cls(model=argument, seed=seed, **config)

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        """Load the backbone named by ``settings.model`` and attach a fresh head."""
        from .encoder_model import (
            EncoderForSafety,
            load_backbone,
            load_tokenizer,
            setup_role_markers,
        )

        name = self.settings.model
        tokenizer = load_tokenizer(name)
        backbone = load_backbone(name, pooler=self.settings.head == "pooler")
        self.markers = setup_role_markers(tokenizer, backbone)
        self._tokenizer = tokenizer
        self._model = EncoderForSafety(backbone, self.settings.head)

    def encode(self, examples: Sequence[Example]) -> list[dict[str, list[int]]]:
        """Token ids of each (context, response) pair, at most ``max_length`` of them.

        A pair that does not fit keeps its response whole and loses its oldest context turns
        first; the newest seeker turn always stays (cut from its start if it alone is too
        long): a dialogue's end, next to the response, matters most.
        """
        from .encoder_model import apply_markers

        limit = self.settings.max_length
        contexts = [apply_markers(ex.context, self.markers) for ex in examples]
        responses = [apply_markers(ex.response, self.markers) for ex in examples]
        enc = self._tokenizer(contexts, responses, truncation=False)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        rows = [{k: enc[k][i] for k in keys} for i in range(len(examples))]
        long = [i for i, row in enumerate(rows) if len(row["input_ids"]) > limit]
        if long:
            fitted = fit_pairs(self._tokenizer, [contexts[i] for i in long],
                               [responses[i] for i in long], limit,
                               [self.markers.get(m, m) for m in ROLE_MARKERS])
            for i, row in zip(long, fitted):
                rows[i] = {k: row[k] for k in keys}
        return rows

    def _collate(self, features: list[dict[str, Any]], tensors: str = "pt") -> dict[str, Any]:
        labels = [f.pop("labels") for f in features] if "labels" in features[0] else None
        if self.settings.pad_to_max_length:
            batch = self._tokenizer.pad(features, padding="max_length",
                                        max_length=self.settings.max_length,
                                        return_tensors=tensors)
        else:
            batch = self._tokenizer.pad(features, padding="longest", return_tensors=tensors)
        out = dict(batch)
        if labels is not None:
            import torch

            out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def input_names(self) -> list[str]:
        """The model inputs the tokenizer makes, in the order the ONNX graph takes them."""
        made = set(self._tokenizer.model_input_names)
        return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in made]

    def torch_model(self) -> Any:
        """The PyTorch model (loaded from the checkpoint folder on first use)."""
        if self._model is None and self._folder is not None:
            from .encoder_model import EncoderForSafety, load_backbone

            backbone = load_backbone(str(self._folder), pooler=self.settings.head == "pooler")
            model = EncoderForSafety(backbone, self.settings.head)
            model.load_head(self._folder)
            self._model = model.eval()
        if self._model is None:
            raise UsageError("this encoder is not trained: call fit() or load a checkpoint")
        return self._model

    def runtime(self) -> str:
        """``onnx`` or ``torch``: what :meth:`predict_proba` runs on, from the ``runtime``
        setting. ``auto`` takes the checkpoint's ONNX model when it has one, onnxruntime is
        installed and the device is the CPU; otherwise PyTorch."""
        wanted = self.settings.runtime
        if wanted == "torch":
            return "torch"
        if wanted == "onnx":
            if self._onnx is None:
                raise UsageError("this encoder has no ONNX model; add one with: mhsafety "
                                 "export --checkpoint DIR --format onnx")
            return "onnx"
        if self._onnx is None or _device(self.settings).type != "cpu":
            return "torch"
        import importlib.util

        return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"

    def _scorer(self) -> Any:
        if self._onnx_scorer is None:
            from .encoder_onnx import OnnxScorer

            assert self._folder is not None and self._onnx is not None
            self._onnx_scorer = OnnxScorer(self._folder, self._onnx)
        return self._onnx_scorer

    # ------------------------------------------------------------------ training

    def fit(self, train: Sequence[Example],
            dev: Sequence[Example] | None = None) -> EncoderClassifier:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from torch.utils.data import DataLoader
        from transformers import get_linear_schedule_with_warmup

        from .encoder_model import no_decay, weighted_cross_entropy

        cfg = self.settings
        if not train:
            raise DataError("cannot train an encoder on an empty training set")
        if any(ex.label is None for ex in train):
            raise DataError("every training item needs a label")
        if cfg.select_on_test and dev is None:
            raise UsageError("select_on_test needs the test set passed as the selection set")
        seed = cfg.seed
        if dev is None and cfg.dev_ratio:
            train, dev = train_dev_split(train, cfg.dev_ratio, seed=seed)
        if dev is not None and any(ex.label is None for ex in dev):
            raise DataError("every item of the dev set needs a label")
        self.record_training_data(train)
        self.dev_data_sha256 = examples_hash(dev) if dev else None

        processes = _process_count()
        batch = cfg.batch_size
        accum = cfg.gradient_accumulation
        per_device = batch // (processes * accum)
        if per_device < 1 or per_device * processes * accum != batch:
            raise UsageError(f"batch size {batch} does not split into {processes} processes x "
                             f"{accum} accumulation steps; choose a multiple of {processes * accum}")
        # The scheduler is stepped by hand once per optimizer step: accelerate's default would
        # step it once per process, which assumes a schedule counted in per-process steps.
        accelerator = Accelerator(mixed_precision=_mixed_precision(cfg),
                                  gradient_accumulation_steps=accum,
                                  step_scheduler_with_optimizer=False,
                                  cpu=_device(cfg).type == "cpu")
        set_seed(seed)
        self._build()
        model = self._model
        weights = torch.tensor(cfg.class_weights, dtype=torch.float32)

        features = self.encode(train)
        for feat, ex in zip(features, train):
            feat["labels"] = ex.label
        # Our own epoch-seeded order (plain shuffle, or length-grouped), so the order of any
        # epoch is reproducible, also after a resume.
        sampler = _LengthGroupedSampler([len(f["input_ids"]) for f in features],
                                        per_device * processes, seed,
                                        grouped=cfg.group_by_length)
        loader = DataLoader(features, batch_size=per_device, sampler=sampler,
                            collate_fn=lambda b: self._collate([dict(f) for f in b]))
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW([
            {"params": [p for n, p in params if not no_decay(n)],
             "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0},
        ], lr=cfg.learning_rate)
        steps_per_epoch = math.ceil(len(features) / batch)
        total = steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(cfg.warmup_ratio * total), total)
        model, optimizer, loader, scheduler = accelerator.prepare(
            model, optimizer, loader, scheduler)

        # Fresh weights: any ONNX model of a loaded checkpoint no longer matches them.
        self._folder, self._onnx, self._onnx_scorer = None, None, None
        best_score, best_state, stale, step = -math.inf, None, 0, 0
        self.history = []
        first_epoch, stopped = 1, False
        resume = _Resume(cfg.work_dir, self._resume_key()) if cfg.work_dir else None
        self._work_folder = resume.folder if resume is not None else None
        if resume is not None and resume.progress is not None:
            prog = resume.progress
            accelerator.load_state(str(resume.folder / prog["state"]))
            best_state = resume.load_best(prog)
            best_score = prog["best_score"] if prog["best_score"] is not None else -math.inf
            stale, step, stopped = prog["stale"], prog["step"], prog["stopped"]
            self.history, self.best_epoch = prog["history"], prog["best_epoch"]
            self.dev_metrics = prog["dev_metrics"]
            first_epoch = prog["epoch"] + 1
            log.info("resuming encoder training after epoch %s from %s", prog["epoch"],
                     resume.folder)
        for epoch in range(first_epoch, cfg.epochs + 1):
            if stopped:
                break
            # The prepared loader passes its epoch on to the sampler when iterated (and would
            # restart from 0 after a resume); setting it keeps the order a function of epoch.
            loader.set_epoch(epoch)
            model.train()
            started = time.perf_counter()
            loss_sum, batches, tokens, positions = 0.0, 0, 0, 0
            bar = _bar(len(loader), accelerator, f"epoch {epoch}/{cfg.epochs}")
            for batch_inputs in loader:
                labels = batch_inputs.pop("labels")
                with accelerator.accumulate(model):
                    logits = model(**batch_inputs)
                    loss = weighted_cross_entropy(logits, labels, weights)
                    accelerator.backward(loss)
                    optimizer.step()
                    if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                        scheduler.step()
                    optimizer.zero_grad()
                loss_sum += float(loss.detach())
                batches += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / batches:.4f}", refresh=False)
                tokens += int(batch_inputs["attention_mask"].sum())
                positions += int(batch_inputs["attention_mask"].numel())
                if accelerator.sync_gradients:
                    step += 1
                    if cfg.max_steps and step >= cfg.max_steps:
                        break
            bar.close()
            row: dict[str, Any] = {
                "epoch": epoch, "steps": step, "train_loss": loss_sum / max(batches, 1),
                "learning_rate": scheduler.get_last_lr()[0],
                "seconds": round(time.perf_counter() - started, 3),
                # Per process: real tokens and padded positions fed to the model.
                "tokens": tokens, "positions": positions,
            }
            stop = cfg.max_steps and step >= cfg.max_steps
            if dev:
                # Every process scores the whole dev set with identical weights, so they all
                # reach the same selection and stopping decisions without communicating.
                metrics = self._score(accelerator.unwrap_model(model), dev)
                row["dev"] = {k: metrics[k] for k in SELECT_METRICS + ("n",)}
                score = float(metrics[cfg.select_metric])
                if score > best_score:
                    best_score, stale, self.best_epoch = score, 0, epoch
                    self.dev_metrics = {"epoch": epoch, **row["dev"]}
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in
                                  accelerator.unwrap_model(model).state_dict().items()}
                else:
                    stale += 1
                    if cfg.patience and stale >= cfg.patience:
                        stop = True
            self.history.append(row)
            log.info("encoder epoch %s: %s", epoch, row)
            if accelerator.is_main_process:
                note(_epoch_line(row, cfg.epochs, cfg.select_metric,
                                 self.best_epoch == epoch))
            if resume is not None:
                resume.commit(accelerator, epoch, {
                    "epoch": epoch, "step": step, "stale": stale, "stopped": stop,
                    "best_score": best_score if best_state is not None else None,
                    "best_epoch": self.best_epoch, "dev_metrics": self.dev_metrics,
                    "history": self.history}, best_state)
            stopped = stop
        accelerator.wait_for_everyone()
        final = accelerator.unwrap_model(model)
        if best_state is not None:
            final.load_state_dict(best_state)
        else:
            self.best_epoch = self.history[-1]["epoch"] if self.history else None
        self._model = final.float().eval()
        return self

    def _resume_key(self) -> dict[str, Any]:
        """What must match for a work folder's state to be resumed: data and settings that
        change the result (not the work folder itself, nor eval batch size or device)."""
        ignore = {"work_dir", "eval_batch_size", "device", "runtime"}
        return {"train_data_sha256": self.train_data_sha256,
                "dev_data_sha256": self.dev_data_sha256,
                "config": {k: v for k, v in self.settings.to_dict().items() if k not in ignore},
                "processes": _process_count()}

    def _score(self, model: Any, examples: Sequence[Example]) -> dict[str, Any]:
        from ..metrics import compute_metrics

        probs = self._predict(model, examples, shard=False)
        metrics = compute_metrics([ex.label for ex in examples], probs.argmax(axis=1).tolist())
        model.train()
        return metrics.to_dict()

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        if self._model is None and self._folder is None:
            raise UsageError("this encoder is not trained: call fit() or load a checkpoint")
        if not examples:
            return np.zeros((0, 8))
        if self.runtime() == "onnx":
            try:
                scorer = self._scorer()
            except Exception as exc:
                if self.settings.runtime == "onnx":
                    raise
                log.warning("ONNX model unusable (%s); predicting with PyTorch", exc)
                self._onnx = None
            else:
                return self._predict_onnx(scorer, examples)
        return self._predict(self.torch_model(), examples, shard=True)

    def _batches(self, examples: Sequence[Example], rank: int = 0, world: int = 1) -> Any:
        """(indices, features) of length-sorted batches of ``eval_batch_size``, longest first
        (so dynamic padding wastes little); process ``rank`` of ``world`` gets every
        world-th item of that order."""
        features = self.encode(examples)
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        mine = order[rank::world]
        size = self.settings.eval_batch_size
        for start in range(0, len(mine), size):
            idx = mine[start:start + size]
            yield idx, [dict(features[i]) for i in idx]

    def _predict_onnx(self, scorer: Any, examples: Sequence[Example]) -> np.ndarray:
        out = np.zeros((len(examples), 8))
        for idx, features in self._batches(examples):
            logits = scorer(self._collate(features, tensors="np")).astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            out[idx] = probs / probs.sum(axis=1, keepdims=True)
        return out

    def _predict(self, model: Any, examples: Sequence[Example], shard: bool) -> np.ndarray:
        """Probabilities in input order: items sorted by token length, batched with dynamic
        padding; under several processes each scores a share and the shares are gathered."""
        import torch

        device = _device(self.settings)
        rank, world = _rank_world(init=True, cpu=device.type == "cpu") if shard else (0, 1)
        model.eval()
        if next(model.parameters()).device != device:
            model.to(device)
        dtype = _autocast_dtype(self.settings, device)
        out: dict[int, list[float]] = {}
        with torch.inference_mode():
            for idx, features in self._batches(examples, rank, world):
                batch = {k: v.to(device) for k, v in self._collate(features).items()}
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = model(**batch)
                probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                out.update(zip(idx, probs.tolist()))
        if world > 1:
            from accelerate.utils import gather_object

            merged: dict[int, list[float]] = {}
            for part in gather_object([out]):
                merged.update(part)
            out = merged
        return np.array([out[i] for i in range(len(examples))], dtype=float)

    def predict_records(self, examples: Sequence[Example], system: str,
                        run: str = "0") -> list[PredictionRecord]:
        records = super().predict_records(examples, system, run)
        if self.settings.select_on_test:
            for rec in records:
                rec.meta = {**rec.meta, "notes": [TEST_SELECTION_NOTE]}
        return records

    # ------------------------------------------------------------------ saving

    def save(self, directory: Any) -> Path:
        """Atomic save by the main process only (the others wait), so a multi-process run
        writes one checkpoint."""
        rank, world = _rank_world()
        if rank == 0:
            super().save(directory)
            # The run is safely saved: its resumable state (optimizer included) can go.
            if self._work_folder is not None and self._work_folder.exists():
                import shutil

                shutil.rmtree(self._work_folder, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self._work_folder.parent.rmdir()  # only when no other run is in it
                self._work_folder = None
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        return Path(directory)

    def save_state(self, directory: Path) -> None:
        if self._model is None and self._folder is None:
            raise UsageError("cannot save an untrained encoder")
        from .encoder_model import quiet_transformers

        model = self.torch_model()
        with quiet_transformers():
            model.backbone.save_pretrained(directory)
        self._tokenizer.save_pretrained(directory)
        model.save_head(directory)

    def manifest_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "role_markers": self.markers,
            "best_epoch": self.best_epoch,
            "dev_metrics": self.dev_metrics,
            "dev_data_sha256": self.dev_data_sha256,
            "history": self.history,
        }
        if self.settings.select_on_test:
            extra["notes"] = [TEST_SELECTION_NOTE]
        # Keys other tools stored (e.g. the guard's calibrated threshold) survive a re-save.
        return {**self._other_extra, **extra}

    @classmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> EncoderClassifier:
        from .encoder_model import HEAD_FILE, load_tokenizer
        from .encoder_onnx import MANIFEST_KEY, onnx_info

        if not (directory / HEAD_FILE).exists():
            raise DataError(f"{directory}: encoder checkpoint has no {HEAD_FILE}")
        model = cls(cls.settings_from_manifest(manifest))
        extra = manifest.get("extra") or {}
        model._tokenizer = load_tokenizer(str(directory))
        model._folder = Path(directory)
        model._onnx = onnx_info(manifest)
        model.markers = dict(extra.get("role_markers") or {})
        model.history = list(extra.get("history") or [])
        model.dev_metrics = extra.get("dev_metrics")
        model.dev_data_sha256 = extra.get("dev_data_sha256")
        model.best_epoch = extra.get("best_epoch")
        # The ONNX model is a file of this folder: a re-save elsewhere does not carry it.
        own = {"role_markers", "best_epoch", "dev_metrics", "dev_data_sha256", "history", "notes",
               MANIFEST_KEY}
        model._other_extra = {k: v for k, v in extra.items() if k not in own}
        return model


# ---------------------------------------------------------------------- truncation


def split_context_turns(context: str, markers: Sequence[str]) -> list[tuple[bool, str]]:
    """``(is_seeker, text)`` for each turn of ``context``, texts exactly as written (their
    concatenation is ``context``). Text before the first marker, or a context without
    markers, counts as the seeker speaking (the data's reading of unmarked text)."""
    import re

    seeker, supporter = markers
    starts = sorted({m.start() for tok in (seeker, supporter)
                     for m in re.finditer(re.escape(tok), context)} | {0})
    ends = starts[1:] + [len(context)]
    turns = [(not context.startswith(supporter, a), context[a:b])
             for a, b in zip(starts, ends) if b > a]
    return turns or [(True, context)]


def fit_pairs(tokenizer: Any, contexts: Sequence[str], responses: Sequence[str],
              max_length: int, markers: Sequence[str]) -> list[dict[str, list[int]]]:
    """Encode (context, response) pairs too long for ``max_length`` by dropping whole
    context turns, oldest first, keeping the response whole and the newest seeker turn.

    Turns are chosen by their token counts; the final encoding cuts what little may still
    overflow from the start of the context (``truncation_side="left"``), so a seeker turn
    longer than the room left keeps its end. A response so long that the seeker turn would
    get under a quarter of the room is cut at its end (the only case the response is cut).
    """
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    split = [split_context_turns(c, markers) for c in contexts]
    flat = [text for turns in split for _, text in turns]
    turn_lengths = iter(len(ids) for ids in
                        tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else iter(())
    kept_contexts, kept_responses = [], []
    for turns, response in zip(split, responses):
        lengths = [next(turn_lengths) for _ in turns]
        seeker = max((i for i, (is_seeker, _) in enumerate(turns) if is_seeker),
                     default=len(turns) - 1)
        enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
        context_room = max(room - len(enc["input_ids"]), min(lengths[seeker], room // 4), 1)
        if len(enc["input_ids"]) > room - context_room:
            response = response[:enc["offset_mapping"][room - context_room - 1][1]]
        # The newest seeker turn first, then the others from newest to oldest while whole
        # turns fit; the first that does not fit ends the walk (no gaps in the dialogue).
        kept, used = {seeker}, lengths[seeker]
        for i in sorted((i for i in range(len(turns)) if i != seeker), reverse=True):
            if used + lengths[i] > context_room:
                break
            kept.add(i)
            used += lengths[i]
        kept_contexts.append("".join(text for i, (_, text) in enumerate(turns) if i in kept))
        kept_responses.append(response)
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"
    try:
        enc = tokenizer(kept_contexts, kept_responses, truncation="only_first",
                        max_length=max_length)
    finally:
        tokenizer.truncation_side = side
    return [{k: enc[k][i] for k in enc} for i in range(len(kept_contexts))]


# ---------------------------------------------------------------------- helpers


def _rank_world(init: bool = False, cpu: bool = False) -> tuple[int, int]:
    """This process's rank and the number of processes; with ``init``, join the launcher's
    process group first (``predict`` under ``accelerate launch`` / ``torchrun``)."""
    import torch.distributed as dist

    if init and _process_count() > 1 and not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=cpu)  # without cpu=True, a GPU-less machine would not join (gloo)
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _process_count() -> int:
    """Processes of this run, from the launcher's environment (before any process group)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _device(cfg: EncoderConfig) -> Any:
    import os

    import torch

    wanted = cfg.device
    if wanted != "auto":
        return torch.device(wanted)
    if torch.cuda.is_available():
        # Under a launcher each process owns the GPU named by LOCAL_RANK.
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _autocast_dtype(cfg: EncoderConfig, device: Any) -> Any:
    import torch

    precision = cfg.precision
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def _mixed_precision(cfg: EncoderConfig) -> str:
    dtype = _autocast_dtype(cfg, _device(cfg))
    if dtype is None:
        return "no"
    return "bf16" if "bfloat16" in str(dtype) else "fp16"


class _Resume:
    """Per-epoch training state in a work folder, so a killed run resumes after its last
    finished epoch. ``progress.json`` is the commit point: it is rewritten atomically only
    after the epoch's state folder (model, optimizer, scheduler, RNG; accelerate's
    ``save_state``) and the best weights so far are complete, so a crash at any moment leaves
    a consistent, resumable folder."""

    def __init__(self, work_dir: str, key: dict[str, Any]) -> None:
        import hashlib
        import json

        # One subfolder per distinct run (seed, data, settings), so several seeds or folds
        # can share a work folder and rerunning the same command finds its own state.
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.folder, self.key = Path(work_dir) / f"run-{digest[:16]}", key
        self.progress: dict[str, Any] | None = None
        path = self.folder / "progress.json"
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise DataError(f"{path}: not valid JSON; delete the work folder to start "
                                "over") from None
            if saved.get("key") != key:
                raise UsageError(f"{self.folder}: holds a training run with other data or "
                                 "settings; pass another work folder or delete this one")
            self.progress = saved

    def load_best(self, prog: dict[str, Any]) -> dict[str, Any] | None:
        if not prog.get("best"):
            return None
        from safetensors.torch import load_file

        return load_file(str(self.folder / prog["best"]))

    def commit(self, accelerator: Any, epoch: int, state: dict[str, Any],
               best_state: dict[str, Any] | None) -> None:
        import shutil

        from ..io import write_json

        name = f"epoch-{epoch}"
        accelerator.save_state(str(self.folder / name))  # every process writes its RNG state
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            best = None
            if best_state is not None and state["best_epoch"] is not None:
                from safetensors.torch import save_file

                best = f"best-epoch-{state['best_epoch']}.safetensors"
                if not (self.folder / best).exists():
                    tmp = self.folder / f".{best}.tmp"
                    save_file(best_state, str(tmp))
                    tmp.replace(self.folder / best)
            write_json(self.folder / "progress.json",
                       {**state, "key": self.key, "state": name, "best": best})
            # Older epochs and superseded best weights are no longer referenced.
            for old in self.folder.iterdir():
                if old.name.startswith(("epoch-", "best-epoch-")) and old.name not in (name, best):
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        accelerator.wait_for_everyone()


class _LengthGroupedSampler:
    """Shuffled indices, a new order per epoch from ``seed + epoch``. With ``grouped``, each
    run of ``group`` items has similar lengths: shuffle, cut into mega-batches of 50 batches,
    sort each by length (what HF's group_by_length does); without, a plain shuffle."""

    def __init__(self, lengths: list[int], group: int, seed: int, grouped: bool = True) -> None:
        self.lengths, self.group, self.seed, self.epoch = lengths, group, seed, 0
        self.grouped = grouped

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths)).tolist()
        if not self.grouped:
            return iter(order)
        mega = self.group * 50
        chunks = [sorted(order[i:i + mega], key=lambda j: -self.lengths[j])
                  for i in range(0, len(order), mega)]
        batches = [c[i:i + self.group] for c in chunks for i in range(0, len(c), self.group)]
        # Mix batch lengths over the epoch; short batches go last, since one in the middle
        # would shift every later batch boundary of the data loader.
        full = [b for b in batches if len(b) == self.group]
        rng.shuffle(full)
        batches = full + [b for b in batches if len(b) < self.group]
        return iter([i for b in batches for i in b])


def _bar(total: int, accelerator: Any, desc: str) -> Any:
    """The epoch's bar (batches, running loss) on a terminal; a no-op bar elsewhere."""
    from ..progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="batch", leave=False,
                        disable=None if accelerator.is_main_process else True)


def _epoch_line(row: dict[str, Any], epochs: int, metric: str, best: bool) -> str:
    """One line per finished epoch: loss, dev score, time (printed on terminals and pipes)."""
    text = f"encoder epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}"
    if "dev" in row:
        text += (f", dev {metric} {100 * row['dev'][metric]:.2f} (n={row['dev']['n']})"
                 + (", best so far" if best else ""))
    return text + f", {row['seconds']:.0f} s"
