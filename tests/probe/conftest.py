"""Shared probe fixtures: a baseline checkpoint and an audit file it was not trained on."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def probe_split(test_examples, tmp_path_factory):
    """(folder, checkpoint, audit file, audit examples, train file): a baseline trained on
    the even items of the test set; the odd items are the audit's data."""
    from mhsafety.data import write_examples
    from mhsafety.registry import create_classifier

    folder = tmp_path_factory.mktemp("probe-split")
    train, audit = test_examples[0::2], test_examples[1::2]
    write_examples(folder / "train.json", train)
    write_examples(folder / "audit.json", audit)
    model = create_classifier("baseline", seed=0, c_grid=[2.0], calibrate=False, ngram_max=2,
                              max_iter=200)
    model.fit(train).save(folder / "ckpt")
    return folder, folder / "ckpt", folder / "audit.json", audit, folder / "train.json"
