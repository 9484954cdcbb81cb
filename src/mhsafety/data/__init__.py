"""Dialogue examples and datasets (floor 2): everything that reads, writes or splits items.

- :mod:`.examples` — ``Example``, ``Turn``, role markers, validation of one item, hashes
- :mod:`.formats` — JSON / JSONL files and text: ``load_examples``, ``read_items_text``
- :mod:`.download` — the pinned public test set and the local cache
- :mod:`.splits` — seeded folds and train/dev splits
- :mod:`.overlap` — items shared by a training set and a scored set (and their fingerprints)
- :mod:`.stats` — dataset statistics

Every name is re-exported here, so ``from mhsafety.data import X`` is the public path.
"""

from .download import (
    CACHE_ENV,
    TEST_SET_SHA256,
    TEST_SET_URL,
    UPSTREAM_COMMIT,
    cache_dir,
    cached_test_set_path,
    download_test_set,
    resolve_data,
)
from .examples import (
    MAX_ITEM_CHARS,
    MAX_ITEM_CHARS_ENV,
    ROLE_MARKERS,
    Example,
    Role,
    Turn,
    example_from_dict,
    examples_from_items,
    examples_hash,
    format_turns,
    mark_roles,
    max_item_chars,
    parse_turns,
)
from .formats import load_examples, read_items_text, read_json_items, read_text_file, write_examples
from .overlap import (
    FINGERPRINT_VERSION,
    CheckpointOverlap,
    OverlapError,
    canonical_text,
    check_checkpoint_overlap,
    check_overlap,
    checkpoint_overlap,
    find_overlap,
    item_fingerprint,
    item_fingerprints,
    item_key,
    normalise_text,
    overlap_message,
    shared_ids,
    training_fingerprints,
)
from .splits import DEFAULT_FOLDS, context_groups, stratified_kfold, train_dev_split
from .stats import dataset_stats, format_stats

__all__ = [
    "CACHE_ENV",
    "DEFAULT_FOLDS",
    "FINGERPRINT_VERSION",
    "MAX_ITEM_CHARS",
    "MAX_ITEM_CHARS_ENV",
    "ROLE_MARKERS",
    "TEST_SET_SHA256",
    "TEST_SET_URL",
    "UPSTREAM_COMMIT",
    "CheckpointOverlap",
    "Example",
    "OverlapError",
    "Role",
    "Turn",
    "cache_dir",
    "cached_test_set_path",
    "canonical_text",
    "check_checkpoint_overlap",
    "check_overlap",
    "checkpoint_overlap",
    "context_groups",
    "dataset_stats",
    "download_test_set",
    "example_from_dict",
    "examples_from_items",
    "examples_hash",
    "find_overlap",
    "format_stats",
    "format_turns",
    "item_fingerprint",
    "item_fingerprints",
    "item_key",
    "load_examples",
    "mark_roles",
    "max_item_chars",
    "normalise_text",
    "overlap_message",
    "parse_turns",
    "read_items_text",
    "read_json_items",
    "read_text_file",
    "resolve_data",
    "shared_ids",
    "stratified_kfold",
    "train_dev_split",
    "training_fingerprints",
    "write_examples",
]
