"""Torch pieces of the encoder classifier: loading a backbone, role-marker tokens, heads, loss.

Imported only by :mod:`mhsafety.classifiers.encoder`, so torch and transformers load only
when an encoder is actually used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import ROLE_MARKERS as DATA_ROLE_MARKERS
from ..errors import UsageError
from ..taxonomy import LABEL_NAMES, NUM_LABELS
from .encoder_config import HEADS

HEAD_FILE = "classifier_head.safetensors"
ROLE_MARKERS = tuple(DATA_ROLE_MARKERS)  # [seeker], [supporter]
# Vocabulary slots the paper takes over for the two markers (BERT-style vocabularies have them).
UNUSED_SLOTS = ("[unused1]", "[unused2]")


def _load_error(name: str, what: str) -> UsageError:
    if Path(name).expanduser().exists():
        return UsageError(f"{name}: is not a Hugging Face {what} folder that transformers can "
                          "load (expected config.json and weights, or tokenizer files, in it)")
    # Hub ids are "name" or "org/name"; anything else was meant as a local folder.
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        return UsageError(f"{name}: no such model folder")
    return UsageError(
        f"cannot load the model {name!r}: there is no such local folder, it is not in the "
        "local Hugging Face cache, and it could not be downloaded (no network, or "
        "HF_HUB_OFFLINE=1); download it once where there is network, or name a local folder "
        "instead"
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (an unused pooler is expected)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all; a quick probe instead of the client's
    retries with back-off (about a minute of warnings per file when there is no network)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co",
                                       url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def _from_pretrained(loader: Any, name: str, what: str, **kwargs: Any) -> Any:
    """A local folder or a cached hub model, without touching the network; otherwise a
    download when the hub is reachable; otherwise one sentence saying what to do."""
    with quiet_transformers():
        try:
            return loader(name, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            if Path(name).expanduser().exists() or not _hub_reachable():
                raise _load_error(name, what) from None
        try:
            return loader(name, **kwargs)
        except (OSError, ValueError):
            raise _load_error(name, what) from None


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer.from_pretrained, name, "tokenizer")


def load_backbone(name: str, pooler: bool) -> nn.Module:
    """The bare encoder (``AutoModel``), with its pooler only when the pooler head needs it."""
    from transformers import AutoModel

    def load(path: str, **kwargs: Any) -> nn.Module:
        try:
            return AutoModel.from_pretrained(path, add_pooling_layer=pooler, **kwargs)
        except TypeError:
            # Architectures without a pooler option (e.g. DistilBERT) take no such argument.
            return AutoModel.from_pretrained(path, **kwargs)

    return _from_pretrained(load, name, "model")


def setup_role_markers(tokenizer: Any, backbone: nn.Module) -> dict[str, str]:
    """Make ``[seeker]`` / ``[supporter]`` single tokens; returns marker -> token written.

    A vocabulary with ``[unused1]``/``[unused2]`` lends those slots (the paper's choice: no new
    embeddings); otherwise the markers become two new tokens and the embeddings grow by two.
    Either way the tokens are registered as special, so the pre-tokenizer never splits them.
    """
    vocab = tokenizer.get_vocab()
    if all(slot in vocab for slot in UNUSED_SLOTS):
        mapping = dict(zip(ROLE_MARKERS, UNUSED_SLOTS))
    else:
        mapping = {m: m for m in ROLE_MARKERS}
    # Special added tokens are matched before normalisation and pre-tokenisation, so they
    # never split into "[", "seeker", "]"; a slot already in the vocabulary keeps its id.
    tokenizer.add_tokens(list(mapping.values()), special_tokens=True)
    if len(tokenizer) > backbone.get_input_embeddings().weight.shape[0]:
        backbone.resize_token_embeddings(len(tokenizer))
    return mapping


def apply_markers(text: str, mapping: dict[str, str]) -> str:
    for marker, token in mapping.items():
        if marker != token:
            text = text.replace(marker, token)
    return text


class ClsHead(nn.Module):
    """The paper's BERT head: dropout and a linear layer on the final-layer [CLS] vector."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, NUM_LABELS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(features))


class RobertaHead(nn.Module):
    """The paper's RoBERTa-wwm head: dropout, dense, tanh, dropout, linear on [CLS]."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, NUM_LABELS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(features)))
        return self.out(self.dropout(x))


class EncoderForSafety(nn.Module):
    """A Hugging Face encoder with one of three heads over the eight labels.

    ``cls`` and ``roberta`` read the final-layer [CLS] vector (the paper); ``pooler`` reads the
    library's pooler output (dense + tanh over [CLS], pretrained for BERT) through dropout and
    a linear layer, like ``BertForSequenceClassification``.
    """

    def __init__(self, backbone: nn.Module, head: str) -> None:
        super().__init__()
        if head not in HEADS:
            raise UsageError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
        cfg = backbone.config
        hidden = int(getattr(cfg, "hidden_size", 0) or cfg.dim)
        dropout = getattr(cfg, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(cfg, "hidden_dropout_prob", getattr(cfg, "dropout", 0.1))
        self.backbone = backbone
        self.head_name = head
        self.head: nn.Module = RobertaHead(hidden, dropout) if head == "roberta" \
            else ClsHead(hidden, dropout)
        std = float(getattr(cfg, "initializer_range", 0.02))
        for module in self.head.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                nn.init.zeros_(module.bias)
        if head == "pooler" and getattr(backbone, "pooler", None) is None:
            raise UsageError(f"the model {getattr(cfg, 'name_or_path', '')!r} has no pooler; "
                             "use the head cls or roberta")
        # The label map travels in the backbone's config.json too.
        cfg.id2label = dict(enumerate(LABEL_NAMES))
        cfg.label2id = {name: i for i, name in enumerate(LABEL_NAMES)}

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        out = self.backbone(**inputs)
        if self.head_name == "pooler":
            features = out.pooler_output
        else:
            features = out.last_hidden_state[:, 0]
        return self.head(features)

    def save_head(self, directory: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(directory / HEAD_FILE))

    def load_head(self, directory: Path) -> None:
        from safetensors.torch import load_file

        self.head.load_state_dict(load_file(str(directory / HEAD_FILE)))


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy, averaged by the summed weights of the batch's labels
    (PyTorch's convention): sum_i w[y_i] * -log p_i(y_i) / sum_i w[y_i]."""
    return nn.functional.cross_entropy(logits.float(), labels,
                                       weight=weights.to(logits.device, torch.float32))


def no_decay(name: str) -> bool:
    """Parameters kept out of weight decay: biases and LayerNorm weights (the paper)."""
    lowered = name.lower()
    return lowered.endswith("bias") or "layernorm" in lowered or "layer_norm" in lowered \
        or ".norm." in lowered
