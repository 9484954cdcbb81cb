"""The encoder classifier on a tiny random BERT: the real code path, offline and fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mhsafety.classifiers import read_manifest
from mhsafety.classifiers.encoder import TEST_SELECTION_NOTE, EncoderClassifier
from mhsafety.errors import UsageError
from mhsafety.registry import create_classifier, load_classifier
from tests.helpers.tiny_bert import build_tiny_bert

SMALL = {"max_length": 64, "batch_size": 8, "eval_batch_size": 16, "epochs": 1}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, test_examples) -> Path:
    texts = [ex.context + ex.response for ex in test_examples]
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", texts)


@pytest.fixture(scope="module")
def small_sets(test_examples):
    return list(test_examples[:48]), list(test_examples[48:72]), list(test_examples[100:124])


@pytest.fixture(scope="module")
def trained(tiny_dir, small_sets):
    train, dev, _ = small_sets
    model = create_classifier(f"encoder:{tiny_dir}", seed=7, **{**SMALL, "epochs": 2,
                                                                "learning_rate": 1e-3})
    return model.fit(train, dev)


def test_role_markers_reuse_unused_slots_and_never_split(tiny_dir):
    from mhsafety.classifiers.encoder_model import load_backbone, load_tokenizer, setup_role_markers

    tok = load_tokenizer(str(tiny_dir))
    backbone = load_backbone(str(tiny_dir), pooler=False)
    rows_before = backbone.get_input_embeddings().weight.shape[0]
    mapping = setup_role_markers(tok, backbone)
    assert mapping == {"[seeker]": "[unused1]", "[supporter]": "[unused2]"}
    model = EncoderClassifier(model=str(tiny_dir))
    model._tokenizer, model.markers = tok, mapping
    from mhsafety.data import Example

    feats = model.encode([Example("[seeker]我很难过[supporter]怎么了[seeker]好累", "[supporter]抱抱")])
    ids = feats[0]["input_ids"]
    vocab = tok.get_vocab()
    assert ids.count(vocab["[unused1]"]) == 2 and ids.count(vocab["[unused2]"]) == 2
    pieces = tok.convert_ids_to_tokens(ids)
    assert "[" not in pieces and "]" not in pieces and "[UNK]" not in pieces
    assert backbone.get_input_embeddings().weight.shape[0] == rows_before  # no new rows


def test_role_markers_added_as_new_tokens_without_unused_slots(tmp_path, test_examples):
    from mhsafety.classifiers.encoder_model import load_backbone, load_tokenizer, setup_role_markers

    folder = build_tiny_bert(tmp_path / "nounused",
                             [ex.response for ex in test_examples[:50]], unused_slots=False)
    tok = load_tokenizer(str(folder))
    backbone = load_backbone(str(folder), pooler=False)
    rows_before = backbone.get_input_embeddings().weight.shape[0]
    mapping = setup_role_markers(tok, backbone)
    assert mapping == {"[seeker]": "[seeker]", "[supporter]": "[supporter]"}
    pieces = tok.tokenize("[seeker]你好[supporter]")
    assert pieces[0] == "[seeker]" and pieces[-1] == "[supporter]"
    assert backbone.get_input_embeddings().weight.shape[0] == rows_before + 2


def test_weighted_loss_matches_hand_computation():
    from mhsafety.classifiers.encoder_config import EncoderConfig
    from mhsafety.classifiers.encoder_model import weighted_cross_entropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 8))
    labels = np.array([0, 2, 7, 7, 5, 2])
    w = np.array(EncoderConfig().class_weights)  # the paper's weights
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(w[labels] * logp[np.arange(6), labels]).sum() / w[labels].sum()
    got = weighted_cross_entropy(torch.tensor(logits), torch.tensor(labels),
                                 torch.tensor(w, dtype=torch.float32))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_train_save_load_gives_identical_probabilities(trained, small_sets, tmp_path):
    _, _, test = small_sets
    assert [row["epoch"] for row in trained.history] == [1, 2]
    assert trained.dev_metrics is not None and trained.best_epoch in (1, 2)
    probs = trained.predict_proba(test)
    assert probs.shape == (len(test), 8)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    folder = trained.save(tmp_path / "ckpt")
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "config.json", "model.safetensors",
            "classifier_head.safetensors", "tokenizer.json"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    manifest = read_manifest(folder)
    assert manifest["kind"] == "encoder"
    assert manifest["config"]["class_weights"] == [2.0, 2.0, 0.5, 2.0, 2.0, 2.0, 2.0, 0.5]
    assert manifest["train_data_sha256"] and manifest["extra"]["dev_data_sha256"]
    assert manifest["extra"]["role_markers"]["[seeker]"] == "[unused1]"
    assert json.loads((folder / "config.json").read_text())["id2label"]["7"] == "Safe Response"

    reloaded = load_classifier(folder)
    assert isinstance(reloaded, EncoderClassifier)
    np.testing.assert_allclose(reloaded.predict_proba(test), probs, rtol=0, atol=1e-6)
    assert reloaded.dev_metrics == trained.dev_metrics

    # A re-save keeps what other tools wrote into the manifest (the guard's threshold).
    manifest["extra"]["guard_threshold"] = 0.3
    (folder / "manifest.json").write_text(json.dumps(manifest))
    again = load_classifier(folder).save(tmp_path / "again")
    assert read_manifest(again)["extra"]["guard_threshold"] == 0.3


def test_prediction_order_and_batching_do_not_change_results(trained, small_sets):
    _, _, test = small_sets
    probs = trained.predict_proba(test)
    np.testing.assert_allclose(trained.predict_proba(test[::-1]), probs[::-1], atol=1e-5)
    one_by_one = np.vstack([trained.predict_proba([ex]) for ex in test[:6]])
    np.testing.assert_allclose(one_by_one, probs[:6], atol=1e-5)
    records = trained.predict_records(test, system="tiny")
    assert [r.id for r in records] == [ex.id for ex in test]
    assert all(r.probs is not None and not r.meta for r in records)


def test_same_seed_same_predictions_other_seed_differs(tiny_dir, small_sets):
    train, _, test = small_sets
    cfg = {**SMALL, "max_steps": 3, "dev_ratio": 0}
    a = create_classifier(f"encoder:{tiny_dir}", seed=3, **cfg).fit(train)
    b = create_classifier(f"encoder:{tiny_dir}", seed=3, **cfg).fit(train)
    c = create_classifier(f"encoder:{tiny_dir}", seed=4, **cfg).fit(train)
    pa = a.predict_proba(test)
    np.testing.assert_array_equal(pa, b.predict_proba(test))
    assert not np.allclose(pa, c.predict_proba(test))
    assert a.history[-1]["steps"] == 3


def test_early_stopping_when_dev_score_stalls(tiny_dir, small_sets):
    train, dev, _ = small_sets
    # With a zero learning rate the dev score cannot improve after epoch 1.
    model = create_classifier(f"encoder:{tiny_dir}", seed=1, **{**SMALL, "epochs": 5,
                              "patience": 1, "learning_rate": 0.0, "max_length": 32})
    model.fit(train[:16], dev[:8])
    assert [row["epoch"] for row in model.history] == [1, 2]
    assert model.best_epoch == 1


def test_select_on_test_marks_records_and_manifest(tiny_dir, small_sets, tmp_path):
    from mhsafety.records import NOTE_SELECTED_ON_TEST

    records_note = NOTE_SELECTED_ON_TEST  # the paper's fine-tuned rows carry the same note
    train, _, test = small_sets
    model = create_classifier(f"encoder:{tiny_dir}", seed=1,
                              **{**SMALL, "max_steps": 1, "select_on_test": True})
    model.fit(train[:16], test)
    records = model.predict_records(test[:3], system="tiny")
    assert all(r.all_notes == [records_note] for r in records)
    manifest = read_manifest(model.save(tmp_path / "leaky"))
    assert manifest["extra"]["notes"] == [TEST_SELECTION_NOTE]
    with pytest.raises(UsageError, match="select_on_test"):
        create_classifier(f"encoder:{tiny_dir}", select_on_test=True).fit(train[:4])


def test_uncached_hub_name_fails_with_one_sentence(small_sets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_classifier("encoder:no-such-org/no-such-model-xyz", **SMALL)
    with pytest.raises(UsageError) as info:
        model.fit(small_sets[0][:8], small_sets[1][:4])
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message and "local folder" in message
    assert "\n" not in message


def test_missing_local_folder_and_bad_settings(tmp_path):
    from mhsafety.classifiers.encoder_model import load_tokenizer

    with pytest.raises(UsageError, match="no such model folder"):
        load_tokenizer(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a Hugging Face"):
        load_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="head"):
        EncoderClassifier(model="x", head="mlp")
    with pytest.raises(UsageError, match="unknown setting 'lr'; expected one of"):
        EncoderClassifier(model="x", lr=1)
    with pytest.raises(UsageError, match="needs a model"):
        create_classifier("encoder")
    with pytest.raises(UsageError, match="epochs must be an integer, got 'abc'"):
        EncoderClassifier(model="x", epochs="abc")  # e.g. --config epochs=abc
    with pytest.raises(UsageError, match=r"warmup_ratio must be in \[0, 1\], got 1.5"):
        EncoderClassifier(model="x", warmup_ratio=1.5)


@pytest.mark.parametrize("head", ["roberta", "pooler"])
def test_other_heads_train_and_reload(tiny_dir, small_sets, tmp_path, head):
    train, _, test = small_sets
    model = create_classifier(f"encoder:{tiny_dir}", seed=2,
                              **{**SMALL, "head": head, "max_steps": 2, "dev_ratio": 0})
    model.fit(train[:16])
    probs = model.predict_proba(test[:4])
    reloaded = load_classifier(model.save(tmp_path / head))
    np.testing.assert_allclose(reloaded.predict_proba(test[:4]), probs, atol=1e-6)


def test_killed_run_resumes_from_its_work_folder(tiny_dir, small_sets, tmp_path, monkeypatch):
    import mhsafety.classifiers.encoder_model as em

    train, _, test = small_sets
    # No dev set: the model kept is the last epoch's, so epoch 2 must be replayed exactly.
    cfg = {**SMALL, "epochs": 2, "max_length": 32, "learning_rate": 1e-3, "dev_ratio": 0}
    spec = f"encoder:{tiny_dir}"
    straight = create_classifier(spec, seed=5, **cfg, work_dir=str(tmp_path / "a"))
    straight.fit(train[:32])

    real_loss, calls = em.weighted_cross_entropy, []

    def crash_in_epoch_two(*args):
        calls.append(1)
        if len(calls) > 4:  # 32 items, batch 8: four steps per epoch
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(em, "weighted_cross_entropy", crash_in_epoch_two)
    work = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        create_classifier(spec, seed=5, **cfg, work_dir=str(work)).fit(train[:32])
    (run_folder,) = work.iterdir()
    progress = json.loads((run_folder / "progress.json").read_text())
    assert progress["epoch"] == 1
    monkeypatch.setattr(em, "weighted_cross_entropy", real_loss)

    resumed = create_classifier(spec, seed=5, **cfg, work_dir=str(work)).fit(train[:32])
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    np.testing.assert_allclose(resumed.predict_proba(test), straight.predict_proba(test),
                               atol=1e-6)
    other = create_classifier(spec, seed=6, **cfg, work_dir=str(work)).fit(train[:32])
    assert len(list(work.iterdir())) == 2  # another seed: its own state, no mix-up
    resumed.save(tmp_path / "ckpt")
    other.save(tmp_path / "ckpt-other")
    assert not work.exists()  # saved runs drop their resumable state


def test_hub_probe_fails_fast_without_network(monkeypatch, small_sets):
    import socket

    from mhsafety.classifiers.encoder_model import _hub_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as server:  # a port that answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert _hub_reachable()
    # The same port, now closed: no hub, so no download attempt (and no minute of retries).
    assert not _hub_reachable()
    with pytest.raises(UsageError, match="could not be downloaded"):
        create_classifier("encoder:no-such-org/no-such-model-xyz", **SMALL).fit(
            small_sets[0][:8], small_sets[1][:4])


def test_length_grouped_batches_cover_every_item_once_with_little_padding():
    from mhsafety.classifiers.encoder import _LengthGroupedSampler

    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 512, size=1000).tolist()
    sampler = _LengthGroupedSampler(lengths, group=16, seed=42)
    sampler.set_epoch(1)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    batches = [order[i:i + 16] for i in range(0, 1000, 16)]
    padded = sum(16 * max(lengths[j] for j in b) for b in batches[:-1])
    random_padded = sum(16 * max(lengths[j] for j in order_b) for order_b in
                        np.array_split(rng.permutation(1000)[:992], 62))
    assert padded < 0.6 * random_padded  # far less padding than random batches
    sampler.set_epoch(2)
    assert list(sampler) != order  # reshuffled each epoch
    again = _LengthGroupedSampler(lengths, 16, 42)
    again.set_epoch(1)
    assert list(again) == order  # and reproducible from the seed
    plain = _LengthGroupedSampler(lengths, 16, 42, grouped=False)
    plain.set_epoch(1)
    first = list(plain)
    assert sorted(first) == list(range(1000)) and first != order
    plain.set_epoch(2)
    assert list(plain) != first


def _decoded(model, example) -> tuple[str, str]:
    """The (context, response) an encoded pair holds, as characters without spaces."""
    ids = model.encode([example])[0]["input_ids"]
    assert len(ids) <= model.settings.max_length
    sep = model._tokenizer.sep_token_id
    first = ids.index(sep)
    text = [model._tokenizer.decode(part, skip_special_tokens=False).replace(" ", "")
            for part in (ids[1:first], ids[first + 1:-1])]
    return text[0], text[1]


def test_truncation_drops_oldest_turns_and_keeps_response_and_newest_seeker(tiny_dir):
    from mhsafety.data import Example

    model = create_classifier(f"encoder:{tiny_dir}", max_length=40)
    model._build()
    turns = [("seeker", "我很久以前说的第一句话"), ("supporter", "我们先聊一聊"),
             ("seeker", "后来我又说了第二句"), ("supporter", "嗯我明白"),
             ("seeker", "最新的话是我很难过")]
    context = "".join(f"[{role}]{text}" for role, text in turns)
    example = Example(context=context, response="[supporter]回复要完整地留下来")
    assert len(model._tokenizer(context, example.response)["input_ids"]) > 40  # it overflows
    kept, response = _decoded(model, example)
    assert response == "[unused2]回复要完整地留下来"
    assert kept.endswith("[unused1]最新的话是我很难过")
    # Room for 37 - 12 = 25 context tokens: whole turns from the newest backwards (10 + 5 +
    # 10); the next (7 more) does not fit, so it and the oldest go, no half turn at the start.
    assert kept == "[unused1]后来我又说了第二句[unused2]嗯我明白[unused1]最新的话是我很难过"

    # A newest seeker turn too long for the room keeps its end; older turns all go.
    wordy = Example(context="[seeker]旧的话[seeker]" + "很长的一段话" * 10 + "结尾在这里",
                    response="[supporter]好的")
    kept, response = _decoded(model, wordy)
    assert response == "[unused2]好的" and kept.endswith("结尾在这里")
    assert "旧" not in kept and len(model.encode([wordy])[0]["input_ids"]) == 40

    # Supporter turns after the newest seeker turn are newer: they stay while they fit.
    late = Example(context="[seeker]很早的话很早的话很早的话[seeker]求助[supporter]后来补充",
                   response="[supporter]回复")
    late = Example(context=late.context.replace("很早的话", "很早的话" * 3), response=late.response)
    assert _decoded(model, late)[0] == "[unused1]求助[unused2]后来补充"


def test_pairs_that_fit_encode_as_the_plain_pair_encoding(tiny_dir, test_examples):
    model = create_classifier(f"encoder:{tiny_dir}", max_length=512)
    model._build()
    sample = list(test_examples[:40])
    plain = model._tokenizer([ex.context.replace("[seeker]", "[unused1]")
                              .replace("[supporter]", "[unused2]") for ex in sample],
                             [ex.response.replace("[supporter]", "[unused2]")
                              .replace("[seeker]", "[unused1]") for ex in sample])
    assert [row["input_ids"] for row in model.encode(sample)] == plain["input_ids"]


def test_training_prints_one_line_per_epoch_when_piped(tiny_dir, small_sets, capsys):
    import re

    train, dev, _ = small_sets
    model = create_classifier(f"encoder:{tiny_dir}", seed=1, max_length=32, batch_size=8,
                              epochs=2, patience=0)
    model.fit(train[:16], dev[:8])
    lines = capsys.readouterr().err.splitlines()  # not a terminal here: no bar, just lines
    pattern = r"encoder epoch (\d)/2: train loss \d+\.\d{4}, dev f1 \d+\.\d\d \(n=8\)"
    assert [re.match(pattern, line).group(1) for line in lines] == ["1", "2"]
    assert "best so far" in lines[0]
    assert f"{model.history[0]['train_loss']:.4f}" in lines[0]
