"""The offline baseline: character n-grams of the response plus features of how the response
relates to the dialogue, a class-weighted logistic regression, and a calibration step.

CPU only, no downloads, scikit-learn for fitting. What the features aim at (see the taxonomy):

- Nonsense (node 1): repetition inside the response, lines echoing each other, copying long
  stretches of the seeker's words back, speaking as the seeker (first-person pronouns where
  the seeker's words are parroted), broken punctuation, and text that reads as improbable
  under a character bigram model of the training contexts (human writing).
- Humanoid Mimicry (node 2): first-person experience ("我也", "如果是我"), caught by n-grams.
- Linguistic Neglect (node 3): generic or off-topic replies that share little with the seeker's
  last turn, question-back patterns ("能具体说说吗", "你说的…是指?"), a question answered by a
  question, distress voiced by the seeker met by no acknowledgement, replies to single-turn
  question posts.
- The unsafe leaves of node 4 are rare (a handful of items each); n-grams and class weights
  are all a linear model can do for them.

Hyperparameters: the regularisation strength ``C`` is picked from a small grid by
cross-validation inside the training data only (never on the data being scored), and the same
out-of-fold scores fit the calibration: a temperature and a per-class bias on the logits
(vector scaling), which also undoes the prior shift that class weighting introduces, so
P(safe) can be thresholded.

The n-gram blocks are scikit-learn's ``TfidfVectorizer``. Saved without pickles:
``vocab.json`` (the n-gram vocabularies in column order and the bigram model's counts) and
``arrays.npz`` (idf, scaler, coefficients, calibration), loaded with ``allow_pickle=False``;
the vectorizers are rebuilt from vocabulary and idf. Settings: :class:`BaselineConfig`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Example, parse_turns
from ..errors import DataError
from ..records import NOTE_DESIGN_ON_TEST
from ..settings import DEFAULT_SEED, Settings, SettingsError, at_least, positive, setting
from ..taxonomy import NUM_LABELS
from .base import Classifier


def _c_grid(values: list[float]) -> str | None:
    if not isinstance(values, list) or not values:
        return "must be a non-empty list of numbers, e.g. [1, 4]"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in values):
        return f"must hold positive numbers only, got {values}"
    return None


@dataclass(frozen=True)
class BaselineConfig(Settings):
    """The baseline's settings: the one home of their defaults (``--config KEY=VALUE``)."""

    seed: int = setting(DEFAULT_SEED, "Seed of the inner cross-validation folds.")
    ngram_min: int = setting(1, "Shortest character n-gram of the response.",
                             check=at_least(1))
    ngram_max: int = setting(3, "Longest character n-gram of the response.",
                             check=at_least(1))
    min_df: int = setting(2, "Keep n-grams seen in at least this many training items (n-grams "
                             "seen once carry little; 2 halves the features and the fit time).",
                          check=at_least(1))
    c_grid: list[float] = setting([1.0, 4.0], "Regularisation strengths C searched by inner "
                                  "cross-validation on the training data only.", check=_c_grid)
    inner_folds: int = setting(3, "Folds of that inner cross-validation (1: no search, no "
                                  "calibration).", check=at_least(1))
    class_weight: str = setting("sqrt", "Class weighting: 'balanced', its square root 'sqrt', "
                                        "or 'none'.", choices=("balanced", "sqrt", "none"))
    dense_weight: float = setting(1.0, "Scale of the dialogue-relation features against the "
                                       "n-gram block.", check=positive)
    seeker_ngrams: bool = setting(True, "Add the response's n-grams that also occur in the last "
                                        "seeker turn, as a vocabulary of their own.")
    fluency: bool = setting(True, "Add how fluent the reply reads under a character bigram "
                                  "model of the training contexts (garbled text is Nonsense).")
    calibrate: bool = setting(True, "Fit a temperature and per-class bias on the inner "
                                    "cross-validation logits.")
    max_iter: int = setting(2000, "Iteration limit of the logistic regression solver.",
                            check=at_least(1))

    def check_together(self) -> None:
        if self.ngram_max < self.ngram_min:
            raise SettingsError(f"{{ngram_max}} ({self.ngram_max}) is below {{ngram_min}} "
                                f"({self.ngram_min})", "ngram_max", "ngram_min")


_QUESTION = re.compile(r"[?？吗呢么]")
_PUNCT = re.compile(r"[，。,.!！?？；;：:、…~～\s\"“”'‘’()（）]")
_FIRST = ("我",)
_SECOND = ("你", "您")
_THIRD = ("他", "她", "它")

DENSE_FEATURES: tuple[str, ...] = (
    "log_response_chars", "response_lines", "response_has_newline",
    "log_context_chars", "context_turns", "single_turn", "context_ends_question",
    "last_turn_is_supporter",
    "bigram_overlap_last_seeker", "bigram_overlap_context", "seeker_bigrams_covered",
    "longest_copy_last_seeker", "longest_copy_context", "longest_copy_chars",
    "copies_previous_supporter", "repeated_trigrams", "repeated_line",
    "question_marks", "ends_with_question", "first_person", "second_person", "third_person",
    "first_person_share", "seeker_first_person", "pronoun_flip",
    "punct_share", "latin_share", "digit_share", "quote_marks",
    "response_seen_in_context",
    "log_last_seeker_chars", "seeker_asks", "question_back_to_question", "seeker_distress",
    "response_empathy", "overlap_earlier_seeker",
)
# Small hand-made lexicons (our own): distress the seeker voices, and a reply acknowledging
# feelings. Neglect often means distress met by no acknowledgement and no shared words.
_DISTRESS = ("难过", "伤心", "痛苦", "焦虑", "抑郁", "害怕", "担心", "压力", "崩溃", "绝望", "孤独",
             "孤单", "失眠", "累", "烦", "哭", "死", "自杀", "自残", "委屈", "无助", "迷茫", "生气",
             "恐惧", "紧张", "失望", "自卑", "不开心", "难受", "心情不好")
_EMPATHY = ("听起来", "感受", "理解", "感觉", "能感", "不容易", "辛苦", "难过", "心疼", "陪",
            "一定", "确实", "明白", "体会")


def response_text(ex: Example) -> str:
    return "".join(t.text for t in parse_turns(ex.response, default_role="supporter"))


def _clean(text: str) -> str:
    return _PUNCT.sub("", text)


def _ngrams(text: str, n: int) -> list[str]:
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def _longest_common(a: str, b: str) -> int:
    """Length of the longest substring of ``a`` that also occurs in ``b``."""
    if not a or not b:
        return 0
    best = 0
    # Grow the length while some substring of that length still occurs: cheap for short texts.
    for n in range(1, len(a) + 1):
        if any(a[i:i + n] in b for i in range(len(a) - n + 1)):
            best = n
        else:
            break
    return best


def _overlap(a: list[str], b: set[str]) -> float:
    return sum(1 for g in a if g in b) / len(a) if a else 0.0


@lru_cache(maxsize=8192)
def _context_info(context: str) -> tuple[Any, ...]:
    """What the features need from a context; cached since many replies share one context."""
    turns = parse_turns(context, default_role="seeker")
    seeker_turns = [t.text for t in turns if t.role == "seeker"]
    last_seeker = seeker_turns[-1] if seeker_turns else ""
    s = _clean(last_seeker)
    c = _clean("".join(t.text for t in turns))
    supporters = tuple(_clean(t.text) for t in turns if t.role == "supporter")
    last_is_supporter = bool(turns) and turns[-1].role == "supporter"
    earlier = frozenset(g for t in seeker_turns[:-1] for g in _ngrams(_clean(t), 2))
    distress = sum(last_seeker.count(w) for w in _DISTRESS)
    return (len(turns), last_seeker, s, c, frozenset(_ngrams(s, 2)), frozenset(_ngrams(c, 2)),
            supporters, last_is_supporter, earlier, distress)


def dense_features(ex: Example) -> list[float]:
    """How the response relates to the dialogue, in the order of :data:`DENSE_FEATURES`."""
    return list(_dense_features(ex.context, ex.response))


@lru_cache(maxsize=16384)
def _dense_features(context: str, response: str) -> tuple[float, ...]:
    # Cached: cross-validation featurises the same items once per fold.
    ex = Example(context, response)
    resp = response_text(ex)
    (n_turns, last_seeker, s, c, s2, c2, supporters, last_is_supporter, earlier,
     distress) = _context_info(ex.context)
    r = _clean(resp)
    r2 = _ngrams(r, 2)
    r3 = _ngrams(r, 3)
    lines = [ln for ln in resp.split("\n") if ln.strip()]
    clean_lines = [_clean(ln) for ln in lines]
    longest_seeker = _longest_common(r, s)
    longest_context = _longest_common(r, c)
    n = max(len(resp), 1)
    first = sum(resp.count(p) for p in _FIRST)
    second = sum(resp.count(p) for p in _SECOND)
    third = sum(resp.count(p) for p in _THIRD)
    seeker_first = sum(last_seeker.count(p) for p in _FIRST)
    # The supporter speaking as the seeker: "I" in the reply where the seeker said "I".
    flip = float(first > 0 and seeker_first > 0 and second == 0)
    prev_support = max((_longest_common(r, t) for t in supporters), default=0)
    return (
        math.log1p(len(resp)),
        float(len(lines)),
        float("\n" in resp.strip()),
        math.log1p(len(ex.context)),
        float(n_turns),
        float(n_turns <= 1),
        float(bool(ex.context.rstrip()) and ex.context.rstrip()[-1] in "?？"),
        float(last_is_supporter),
        _overlap(r2, s2),
        _overlap(r2, c2),
        _overlap(list(s2), set(r2)),
        longest_seeker / max(len(r), 1),
        longest_context / max(len(r), 1),
        math.log1p(longest_seeker),
        prev_support / max(len(r), 1),
        1.0 - len(set(r3)) / len(r3) if r3 else 0.0,
        float(len(set(clean_lines)) < len(clean_lines)),
        float(len(_QUESTION.findall(resp))),
        float(resp.rstrip()[-1:] in ("?", "？", "吗", "呢")),
        float(first),
        float(second),
        float(third),
        first / max(first + second, 1),
        float(seeker_first),
        flip,
        len(_PUNCT.findall(resp)) / n,
        sum(ch.isascii() and ch.isalpha() for ch in resp) / n,
        sum(ch.isdigit() for ch in resp) / n,
        float(sum(resp.count(q) for q in "\"“”")),
        float(bool(r) and r in c),
        math.log1p(len(last_seeker)),
        float(bool(_QUESTION.search(last_seeker[-3:]))),
        float(bool(_QUESTION.search(last_seeker[-3:])) and resp.rstrip()[-1:] in ("?", "？")),
        math.log1p(distress),
        math.log1p(sum(resp.count(w) for w in _EMPATHY)),
        _overlap(r2, earlier),
    )


def _mark(text: str) -> str:
    return f"\x02{text}\x03"  # start/end marks: how a reply opens and closes matters


def _echoed_grams(doc: tuple[str, str], analyze: Callable[[str], list[str]]) -> list[str]:
    """The response's n-grams of two or more characters that occur in the seeker's turn."""
    response, seeker = doc
    return [g for g in analyze(response) if len(g) >= 2 and g in seeker]


def char_tfidf(ngram_min: int, ngram_max: int, min_df: int = 1,
               vocabulary: list[str] | None = None, idf: np.ndarray | None = None):
    """scikit-learn's TF-IDF of character n-grams (sublinear tf, smooth idf, l2 rows).

    Rebuilt from a saved ``vocabulary`` (the n-grams in column order) and ``idf`` it needs no
    fit, so checkpoints hold plain JSON and arrays, never a pickled vectorizer.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char", preprocessor=_mark, lowercase=False,
                          ngram_range=(ngram_min, ngram_max), min_df=min_df, sublinear_tf=True,
                          dtype=np.float64,
                          vocabulary=None if vocabulary is None
                          else {g: i for i, g in enumerate(vocabulary)})
    if idf is not None:
        vec.idf_ = idf
    return vec


def echo_tfidf(response_vectorizer: Any, min_df: int = 2, vocabulary: list[str] | None = None,
               idf: np.ndarray | None = None):
    """TF-IDF over the response n-grams (of ``response_vectorizer``) that echo the seeker's
    last turn; its documents are (response, last seeker turn) pairs."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=partial(_echoed_grams,
                                           analyze=response_vectorizer.build_analyzer()),
                          min_df=min_df, sublinear_tf=True, dtype=np.float64,
                          vocabulary=None if vocabulary is None
                          else {g: i for i, g in enumerate(vocabulary)})
    if idf is not None:
        vec.idf_ = idf
    return vec


def _vocabulary(vec: Any) -> list[str]:
    return vec.get_feature_names_out().tolist()


class CharBigramLM:
    """Interpolated character bigram model; plain counts, saved as JSON."""

    FEATURES = ("fluency_mean_logprob", "fluency_min_logprob", "fluency_unseen_bigrams",
                "fluency_worst_window")

    def __init__(self, unigrams: dict[str, int] | None = None,
                 bigrams: dict[str, int] | None = None) -> None:
        self.unigrams = unigrams or {}
        self.bigrams = bigrams or {}
        self.total = sum(self.unigrams.values())

    def fit(self, texts: Sequence[str]) -> CharBigramLM:
        uni: Counter[str] = Counter()
        bi: Counter[str] = Counter()
        for text in texts:
            uni.update(text)
            bi.update(_ngrams(text, 2))
        self.unigrams, self.bigrams = dict(uni), dict(bi)
        self.total = sum(uni.values())
        return self

    def features(self, text: str) -> list[float]:
        if len(text) < 2:
            return [0.0, 0.0, 0.0, 0.0]
        v = len(self.unigrams) + 1
        logps, unseen = [], 0
        for a, b in pairwise(text):
            p_b = (self.unigrams.get(b, 0) + 1) / (self.total + v)
            ab = self.bigrams.get(a + b, 0)
            unseen += ab == 0
            logps.append(math.log((ab + 2.0 * p_b) / (self.unigrams.get(a, 0) + 2.0)))
        window = min(len(logps), 4)
        worst = min(sum(logps[i:i + window]) / window for i in range(len(logps) - window + 1))
        return [sum(logps) / len(logps), min(logps), unseen / len(logps), worst]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_vector_scaling(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Temperature and per-class bias minimising the log loss of held-out logits."""
    from scipy.optimize import minimize

    k = logits.shape[1]
    onehot = np.eye(k)[y]

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_t, b = params[0], params[1:]
        t = math.exp(log_t)
        z = logits / t + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        value = -(onehot * logp).sum() / len(y) + 1e-3 * (b @ b)
        g_z = (p - onehot) / len(y)
        grad_b = g_z.sum(axis=0) + 2e-3 * b
        grad_logt = float((g_z * (-logits / t)).sum())
        return value, np.concatenate([[grad_logt], grad_b])

    res = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B",
                   bounds=[(-3.0, 3.0)] + [(None, None)] * k)
    return float(math.exp(res.x[0])), res.x[1:]


class BaselineClassifier(Classifier):
    """Character n-grams + dialogue-relation features -> calibrated logistic regression."""

    settings: BaselineConfig

    kind = "baseline"
    config_class = BaselineConfig
    # Its features and defaults were chosen by cross-validation on the public test set.
    design_notes = (NOTE_DESIGN_ON_TEST,)
    # Its n-grams must occur in two items and its calibration needs inner folds.
    min_train_items = 10

    def __init__(self, settings: BaselineConfig | None = None, /, **config: Any) -> None:
        super().__init__(settings, **config)
        self._vectorizer: Any = None  # sklearn TfidfVectorizer
        self._copy_vectorizer: Any = None
        self._lm: CharBigramLM | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._extra: dict[str, Any] = {}

    # ------------------------------------------------------------------ features

    def _features(self, examples: Sequence[Example], fit: bool = False):
        from scipy.sparse import csr_matrix, hstack

        texts = [response_text(ex) for ex in examples]
        if fit:
            self._vectorizer = char_tfidf(self.settings.ngram_min, self.settings.ngram_max,
                                          self.settings.min_df)
            try:
                blocks = [self._vectorizer.fit_transform(texts)]
            except ValueError as exc:  # e.g. min_df above the number of training items
                raise DataError(f"baseline: cannot build the n-gram vocabulary ({exc})") from None
        else:
            assert self._vectorizer is not None
            blocks = [self._vectorizer.transform(texts)]
        if self.settings.seeker_ngrams:
            # Which of the response's n-grams echo the seeker's last turn: a separate
            # vocabulary, so "copied" and "own" words get separate weights.
            pairs = [(text, _context_info(ex.context)[1]) for text, ex in zip(texts, examples)]
            if fit:
                self._copy_vectorizer = echo_tfidf(self._vectorizer)
                try:
                    blocks.append(self._copy_vectorizer.fit_transform(pairs) * 0.5)
                except ValueError:  # no echoed n-gram in two training items: no such block
                    self._copy_vectorizer = None
            elif self._copy_vectorizer is not None:
                blocks.append(self._copy_vectorizer.transform(pairs) * 0.5)
        rows = [dense_features(ex) for ex in examples]
        if self.settings.fluency:
            if fit:
                contexts = {ex.context for ex in examples}
                self._lm = CharBigramLM().fit(
                    ["".join(t.text for t in parse_turns(c)) for c in sorted(contexts)])
            assert self._lm is not None
            rows = [row + self._lm.features(response_text(ex)) for row, ex in zip(rows, examples)]
        dense = np.array(rows, dtype=float)
        if fit:
            self._arrays["dense_mean"] = dense.mean(axis=0)
            scale = dense.std(axis=0)
            self._arrays["dense_scale"] = np.where(scale > 1e-9, scale, 1.0)
        dense = (dense - self._arrays["dense_mean"]) / self._arrays["dense_scale"]
        # Clip so one extreme value (a very long reply) cannot dominate a linear score.
        dense = np.clip(dense, -5, 5) * (self.settings.dense_weight / math.sqrt(dense.shape[1]))
        blocks.append(csr_matrix(dense))
        return hstack(blocks, format="csr")

    # ------------------------------------------------------------------ training

    def _class_weights(self, y: np.ndarray) -> dict[int, float] | None:
        mode = self.settings.class_weight
        if mode == "none":
            return None
        counts = Counter(y.tolist())
        k = len(counts)
        weights = {c: len(y) / (k * n) for c, n in counts.items()}
        if mode == "sqrt":
            weights = {c: math.sqrt(w) for c, w in weights.items()}
        return weights

    def _logreg(self, c: float, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, class_weight=self._class_weights(y),
                                  max_iter=self.settings.max_iter, tol=1e-4)

    def _inner_logits(self, x, y: np.ndarray, c: float, folds) -> np.ndarray:
        classes = np.unique(y)
        out = np.zeros((len(y), len(classes)))
        for train_idx, test_idx in folds:
            model = self._logreg(c, y[train_idx]).fit(x[train_idx], y[train_idx])
            z = np.full((len(test_idx), len(classes)), -30.0)  # class unseen in this fold
            cols = np.searchsorted(classes, model.classes_)
            z[:, cols] = model.decision_function(x[test_idx]).reshape(len(test_idx), -1) \
                if len(model.classes_) > 2 else np.column_stack(
                    [-model.decision_function(x[test_idx]) / 2,
                     model.decision_function(x[test_idx]) / 2])
            out[test_idx] = z
        return out

    def fit(self, train: Sequence[Example], dev: Sequence[Example] | None = None
            ) -> BaselineClassifier:
        if not train:
            raise DataError("cannot train the baseline on an empty dataset")
        if any(ex.label is None for ex in train):
            raise DataError("every training item needs a label")
        y = np.array([ex.label for ex in train])
        classes = np.unique(y)
        if len(classes) < 2:
            raise DataError("the training data must contain at least two different labels")
        from threadpoolctl import threadpool_limits

        self._arrays = {}
        # The problems are small: BLAS threads only add contention (measured 8x slower fits
        # on a busy 2-core machine), so fitting runs single-threaded.
        with threadpool_limits(limits=1):
            return self._fit(train, dev, y, classes)

    def _fit(self, train: Sequence[Example], dev: Sequence[Example] | None, y: np.ndarray,
             classes: np.ndarray) -> BaselineClassifier:
        import warnings

        from ..data import stratified_kfold

        x = self._features(train, fit=True)
        grid = [float(c) for c in self.settings.c_grid]
        k = min(int(self.settings.inner_folds), int(np.bincount(y).max()))
        folds = stratified_kfold(train, k, self.settings.seed) if k >= 2 else []
        scores: dict[float, dict[str, float]] = {}
        best_c, best_logits = grid[0], None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on tiny folds
            inner = bool(folds) and (len(grid) > 1 or self.settings.calibrate)
            total_fits = (len(grid) * len(folds) if inner else 0) + 1
            if inner:
                best_key = None
                for i, c in enumerate(grid):
                    logits = self._inner_logits(x, y, c, folds)
                    self.report_progress((i + 1) * len(folds), total_fits, f"C={c:g}")
                    pred = classes[logits.argmax(axis=1)]
                    acc = float(np.mean(pred == y))
                    logp = np.log(np.clip(_softmax(logits)[np.arange(len(y)),
                                                           np.searchsorted(classes, y)], 1e-12, 1))
                    scores[c] = {"inner_accuracy": acc, "inner_log_loss": float(-logp.mean())}
                    key = (acc, -scores[c]["inner_log_loss"])
                    if best_key is None or key > best_key:
                        best_key, best_c, best_logits = key, c, logits
            model = self._logreg(best_c, y).fit(x, y)
            self.report_progress(total_fits, total_fits, f"final fit, C={best_c:g}")
        coef = model.coef_ if len(classes) > 2 else np.vstack([-model.coef_ / 2, model.coef_ / 2])
        intercept = model.intercept_ if len(classes) > 2 else np.array(
            [-model.intercept_[0] / 2, model.intercept_[0] / 2])
        temperature, bias = 1.0, np.zeros(len(classes))
        if self.settings.calibrate and best_logits is not None:
            temperature, bias = _fit_vector_scaling(best_logits, np.searchsorted(classes, y))
        self._arrays.update(
            idf=self._vectorizer.idf_, coef=np.asarray(coef, dtype=float),
            intercept=np.asarray(intercept, dtype=float), classes=classes.astype(np.int64),
            temperature=np.array([temperature]), bias=np.asarray(bias, dtype=float),
        )
        if self._copy_vectorizer is not None:
            self._arrays["copy_idf"] = self._copy_vectorizer.idf_
        self.record_training_data(train)
        self._extra = {"chosen_C": best_c, "inner_cv": {str(c): s for c, s in scores.items()},
                       "temperature": temperature, "n_train": len(train),
                       "n_features": int(x.shape[1])}
        if dev:
            from ..metrics import compute_metrics

            dev_gold = [ex.label for ex in dev]
            if all(g is not None for g in dev_gold):
                m = compute_metrics(dev_gold, self.predict(dev).tolist())  # type: ignore[arg-type]
                self._extra["dev"] = {"n": m.n, "accuracy": m.accuracy, "f1": m.f1,
                                      "macro_f1": m.macro_f1}
        return self

    # ------------------------------------------------------------------ prediction

    def decision_logits(self, examples: Sequence[Example]) -> np.ndarray:
        if "coef" not in self._arrays:
            raise DataError("the baseline is not trained yet: call fit() or load a checkpoint")
        from sklearn import config_context

        # Our own TF-IDF rows are finite and the vectorizers' parameters were checked at fit:
        # skipping sklearn's re-checks saves a fifth of the time to score one item.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            x = self._features(examples)
        return (x @ self._arrays["coef"].T + self._arrays["intercept"]) \
            / float(self._arrays["temperature"][0]) + self._arrays["bias"]

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        out = np.zeros((len(examples), NUM_LABELS))
        if not len(examples):
            return out
        out[:, self._arrays.get("classes", np.arange(0))] = _softmax(
            np.asarray(self.decision_logits(examples)))
        return out

    # ------------------------------------------------------------------ persistence

    def manifest_extra(self) -> dict[str, Any]:
        return dict(self._extra)

    def save_state(self, directory: Path) -> None:
        if "coef" not in self._arrays:
            raise DataError("cannot save an untrained baseline")
        assert self._vectorizer is not None
        vocab = {"response": _vocabulary(self._vectorizer)}
        if self._copy_vectorizer is not None:
            vocab["copied"] = _vocabulary(self._copy_vectorizer)
        if self._lm is not None:
            vocab["lm_unigrams"] = self._lm.unigrams  # type: ignore[assignment]
            vocab["lm_bigrams"] = self._lm.bigrams  # type: ignore[assignment]
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False),
                                              encoding="utf-8")
        with open(directory / "arrays.npz", "wb") as handle:
            np.savez(handle, **self._arrays)

    @classmethod
    def load_state(cls, directory: Path, manifest: dict[str, Any]) -> BaselineClassifier:
        model = cls(cls.settings_from_manifest(manifest))
        try:
            vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            with np.load(directory / "arrays.npz", allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError as exc:
            raise DataError(f"{directory}: baseline checkpoint is missing "
                            f"{Path(exc.filename).name}") from None
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{directory}: baseline checkpoint files are unreadable ({exc})") \
                from None
        needed = {"idf", "coef", "intercept", "classes", "temperature", "bias",
                  "dense_mean", "dense_scale"}
        if not needed <= set(arrays) or "response" not in vocab:
            raise DataError(f"{directory}: baseline checkpoint is incomplete "
                            f"(missing {', '.join(sorted(needed - set(arrays))) or 'vocab'})")
        model._vectorizer = char_tfidf(model.settings.ngram_min, model.settings.ngram_max,
                                       vocabulary=vocab["response"], idf=arrays["idf"])
        if vocab.get("copied") and "copy_idf" in arrays:
            model._copy_vectorizer = echo_tfidf(model._vectorizer, vocabulary=vocab["copied"],
                                                idf=arrays["copy_idf"])
        n_dense = len(DENSE_FEATURES)
        if model.settings.fluency:
            if "lm_unigrams" not in vocab or "lm_bigrams" not in vocab:
                raise DataError(f"{directory}: baseline checkpoint is incomplete "
                                "(missing the fluency model in vocab.json)")
            model._lm = CharBigramLM(vocab["lm_unigrams"], vocab["lm_bigrams"])
            n_dense += len(CharBigramLM.FEATURES)
        n_cols = len(vocab["response"]) + len(vocab.get("copied", [])) + n_dense
        if arrays["coef"].shape != (len(arrays["classes"]), n_cols):
            raise DataError(f"{directory}: baseline checkpoint arrays do not match its vocabulary")
        model._arrays = arrays
        model._extra = dict(manifest.get("extra") or {})
        return model
