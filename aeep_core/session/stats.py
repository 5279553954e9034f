"""Knowing when to stop: what the stats view shows, computed from the store alone.

* **Labels per class** — the current answers. A class with fewer than
  ``MIN_RELIABLE_LABELS`` is flagged: its figures are noise and the model barely knows it.
* **The model's guesses before each answer** — every card of a batch chosen by a model
  carries that model's guess, made before the person answered it (``round_items``). Set
  against the answers they make a confusion matrix, and their hit rate is an unbiased
  estimate of the model's accuracy *on what the strategy picks* (harder than the pool
  at large: the picks are chosen for being uncertain or unexplored). Skipped and
  taken-back cards, and cards shown without a model (a cold start, an import), count in
  neither. The interval is Wilson's score interval for a binomial proportion (95%),
  which stays inside [0, 1] and behaves at small n and at 0% or 100%.
* **Recall per class** — of the guessed cards the person answered ``c``, the share the
  model had guessed ``c``: the diagonal of the guesses-vs-answers matrix over its row,
  with the same Wilson interval as the accuracy (a rare class's interval is wide, which
  is the point: the person sees where the model is blind).
* **Test accuracy** — the confusion matrix on the ``--test`` folder of the model that
  chose each round, stored with it.
* **Stabilizing predictions** (Bloodgood & Vijay-Shanker 2009, CoNLL, "A method for
  stopping active learning based on stabilizing predictions and the need for
  user-adjustable stopping") — a fixed *stop set*, a seeded random sample of up to
  1,000 items drawn once per project, is predicted by the model that chose each round;
  Cohen's kappa between the predictions of consecutive rounds measures how much the
  model still changes. The hint fires when the mean kappa of the last 3 consecutive
  pairs is at least 0.99: the defaults of small-text's ``KappaAverage``
  (webis-de/small-text, ``small_text/stopping_criteria/kappa.py`` as corrected in 1.3.3:
  ``window_size=3, kappa=0.99``, identical predictions count as kappa 1). The stop set is
  drawn from the whole pool, so items labelled later stay in it (their predictions are
  compared like any other's).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aeep_core.store import Store
from aeep_core.store.classes import ClassList

STOP_SET_SIZE = 1000
KAPPA_WINDOW = 3  # small-text KappaAverage: window_size
KAPPA_THRESHOLD = 0.99  # small-text KappaAverage: kappa
RECENT_ROUNDS = 3  # the accuracy of the latest models: the guesses of the last rounds
# Under 5 answers a class's recall interval is half of [0, 1] wide or more (Wilson: 2 of 4
# gives 15%-85%, 4 of 4 51%-100%), so the view asks for more labels of it instead of
# trusting the figure. A floor, not a guarantee: 5 of 5 still gives 57%-100%.
MIN_RELIABLE_LABELS = 5
Z_95 = 1.959964  # standard normal quantile of a two-sided 95% interval


# --- the maths ------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion of ``successes`` in ``n`` trials (95% by
    default); (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(truth: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]`` of paired class indices."""
    t, p = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def cohen_kappa(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, n_classes: int) -> float:
    """Cohen's kappa between two raters' class indices: (p_o - p_e) / (1 - p_e).

    Identical predictions give 1.0 (small-text's rule: the formula divides 0 by 0 when
    both predict one class throughout)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(a) != len(b):
        raise ValueError(f"kappa needs predictions of the same items ({len(a)} vs {len(b)})")
    if len(a) == 0 or np.array_equal(a, b):
        return 1.0
    observed = float(np.mean(a == b))
    expected = float(np.dot(np.bincount(a, minlength=n_classes), np.bincount(b, minlength=n_classes))) / len(a) ** 2
    return 1.0 if expected >= 1.0 else (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class StopHint:
    """Whether predictions have stabilised: the mean of the last ``window`` kappas."""

    stop: bool
    mean_kappa: float | None  # None until there are ``window`` kappas
    window: int
    threshold: float

    @property
    def message(self) -> str:
        if self.mean_kappa is None:
            return f"too early: needs {self.window} kappas between consecutive rounds"
        if self.stop:
            return "stop: predictions stable"
        return f"keep labelling: predictions still change (mean kappa {self.mean_kappa:.3f} < {self.threshold})"


def stopping_hint(kappas: Sequence[float], window: int = KAPPA_WINDOW, threshold: float = KAPPA_THRESHOLD) -> StopHint:
    """small-text's ``KappaAverage`` rule: stop once the mean of the last ``window``
    kappas between consecutive rounds reaches ``threshold``."""
    if len(kappas) < window:
        return StopHint(False, None, window, threshold)
    mean = float(np.mean(kappas[-window:]))
    return StopHint(mean >= threshold, mean, window, threshold)


def consecutive_kappas(rounds: Sequence[tuple[int, Sequence[int | None]]], n_classes: int) -> list[tuple[int, float]]:
    """(round, kappa with the round before) for each consecutive pair of recorded stop-set
    predictions, compared on the items both predicted (an item gone from the folder
    has none)."""
    out = []
    for (_, before), (number, after) in zip(rounds, rounds[1:]):
        both = [(x, y) for x, y in zip(before, after) if x is not None and y is not None]
        if both:
            a, b = zip(*both)
            out.append((number, cohen_kappa(a, b, n_classes)))
    return out


# --- the stop set ---------------------------------------------------------------------
@dataclass(frozen=True)
class StopSet:
    """The project's stop set: stored item ids (ascending) and, for those in the pool now,
    their pool positions."""

    item_ids: list[int]
    present: np.ndarray  # bool per item id: in the pool now
    positions: np.ndarray  # pool position of each present item, in item-id order

    @classmethod
    def load(cls, store: Store, item_ids: Sequence[int | None], seed: int, size: int = STOP_SET_SIZE) -> StopSet | None:
        """The stored stop set, drawn and stored first when the project has none (a
        seeded random sample of ``size`` of the pool's items); None when there is none
        and the store is read-only."""
        stored = store.stop_set()
        if not stored:
            known = [i for i in item_ids if i is not None]
            if store.read_only or not known:
                return None
            pick = np.random.default_rng([seed, 2**22]).choice(len(known), size=min(size, len(known)), replace=False)
            store.set_stop_set([known[i] for i in pick.tolist()])
            stored = store.stop_set()
        index = {item: pos for pos, item in enumerate(item_ids) if item is not None}
        present = np.array([i in index for i in stored], dtype=bool)
        positions = np.array([index[i] for i in stored if i in index], dtype=np.int64)
        return cls(stored, present, positions)

    def align(self, predicted: np.ndarray | None) -> list[int | None] | None:
        """Predictions for :attr:`positions` as stored: one per stop-set item id, None for
        items not in the pool now."""
        if predicted is None:
            return None
        it = iter(np.asarray(predicted).tolist())
        return [int(next(it)) if here else None for here in self.present.tolist()]


# --- the report -----------------------------------------------------------------------
@dataclass(frozen=True)
class AccuracyEstimate:
    """Hits among the model's guesses, with Wilson's 95% interval."""

    correct: int
    n: int
    low: float
    high: float
    rounds: list[int]  # the rounds whose guesses count

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @classmethod
    def of(cls, hits: Sequence[tuple[int, bool]]) -> AccuracyEstimate:
        """From (round, guessed right) pairs."""
        correct = sum(ok for _, ok in hits)
        low, high = wilson_interval(correct, len(hits))
        return cls(correct, len(hits), low, high, sorted({r for r, _ in hits}))


@dataclass(frozen=True)
class CurvePoint:
    """One round on the learning curve: labels the choosing model had, its accuracy on
    the round's batch (guessed before the answers) and on the test folder."""

    round: int
    labelled: int
    batch_accuracy: float | None
    test_accuracy: float | None


@dataclass(frozen=True)
class ClassFigures:
    """One class in the stats view: its labels and the model's recall on it."""

    index: int
    name: str
    labels: int  # current answers of this class
    recall: AccuracyEstimate  # the guessed cards answered with this class: guessed it too?

    @property
    def seen(self) -> bool:
        """Whether the person has given this class at least once."""
        return self.labels > 0

    @property
    def unreliable(self) -> bool:
        """Too few labels for the recall to mean much, or for the model to learn the class."""
        return self.labels < MIN_RELIABLE_LABELS


def per_class_figures(
    classes: Sequence[str], labels_per_class: Sequence[int], answered: Sequence[tuple[int, int, int]]
) -> list[ClassFigures]:
    """Per class, in class-index order: its labels and the model's recall on it.

    ``answered`` holds (round, answer, guess) of every guessed card answered with a class;
    a class's recall is the share of its cards whose guess was that class, with Wilson's
    interval (:meth:`AccuracyEstimate.of`); ``n`` is 0 when none was answered."""
    return [
        ClassFigures(c, name, int(labels_per_class[c]), AccuracyEstimate.of([(r, g == c) for r, a, g in answered if a == c]))
        for c, name in enumerate(classes)
    ]


@dataclass
class StatsReport:
    """Everything the stats view shows; see the module docstring for each part."""

    classes: list[str]
    labels_per_class: list[int]
    skipped: int
    guess_confusion: np.ndarray  # [answer, guess] over every guessed, answered card
    estimate: AccuracyEstimate  # every round
    recent: AccuracyEstimate  # the last RECENT_ROUNDS rounds with guesses
    test_confusion: np.ndarray | None  # of the newest model evaluated on --test
    test_round: int | None
    kappas: list[tuple[int, float]]
    hint: StopHint
    stop_set_size: int
    per_class: list[ClassFigures] = field(default_factory=list)
    curve: list[CurvePoint] = field(default_factory=list)

    @property
    def classes_seen(self) -> int:
        """How many classes have at least one label."""
        return sum(1 for f in self.per_class if f.seen)

    @property
    def test_accuracy(self) -> float | None:
        t = self.test_confusion
        return None if t is None or t.sum() == 0 else float(np.trace(t) / t.sum())


def live_positions(classes: ClassList) -> np.ndarray:
    """For each class index, its position among the live classes, a merged class counting
    as the class it went into: a guess of "fox" made before fox was merged into dog is a
    guess of dog now."""
    position = {c.index: i for i, c in enumerate(classes.live)}
    return np.array([position[classes.resolve(c)] for c in range(len(classes))], dtype=np.int64)


def fold_matrix(matrix: np.ndarray, classes: ClassList) -> np.ndarray:
    """A confusion matrix by class index (of a round with fewer classes, or more before a
    merge) as one over the live classes: merged rows and columns added to their class's."""
    n = len(classes)
    full = np.zeros((n, n), dtype=np.int64)
    full[: len(matrix), : len(matrix)] = matrix
    position = live_positions(classes)
    folded = np.zeros((len(classes.live), len(classes.live)), dtype=np.int64)
    np.add.at(folded, (position[:, None], position[None, :]), full)
    return folded


def build_report(store: Store, classes: ClassList) -> StatsReport:
    """The stats view's figures from the store (no model is run: a worker thread may call
    this while the trainer trains), over the live classes (:func:`live_positions`)."""
    names = [c.name for c in classes.live]
    n = len(names)
    position = live_positions(classes)
    current = store.current_labels()
    per_class = Counter(int(position[r["label"]]) for r in current if r["label"] is not None and r["label"] >= 0)
    skipped = sum(1 for r in current if r["label"] == -1)
    answered = [
        (int(g["round"]), int(position[g["label"]]), int(position[g["predicted"]]))
        for g in store.guesses()
        if g["label"] is not None and g["label"] >= 0
    ]
    guess_confusion = confusion_matrix([a for _, a, _ in answered], [p for _, _, p in answered], n)
    hits = [(r, a == p) for r, a, p in answered]
    guessed_rounds = sorted({r for r, _ in hits})[-RECENT_ROUNDS:]
    predictions = store.round_predictions()
    stop_rounds = [(r, [None if p is None else int(position[p]) for p in stop]) for r, stop, _ in predictions if stop is not None]
    kappas = consecutive_kappas(stop_rounds, n)
    tests = [(r, fold_matrix(np.asarray(t, dtype=np.int64), classes)) for r, _, t in predictions if t is not None]
    labels_per_class = [per_class.get(c, 0) for c in range(n)]
    return StatsReport(
        classes=names,
        labels_per_class=labels_per_class,
        skipped=skipped,
        guess_confusion=guess_confusion,
        estimate=AccuracyEstimate.of(hits),
        recent=AccuracyEstimate.of([h for h in hits if h[0] in guessed_rounds]),
        test_confusion=tests[-1][1] if tests else None,
        test_round=tests[-1][0] if tests else None,
        kappas=kappas,
        hint=stopping_hint([k for _, k in kappas]),
        stop_set_size=len(store.stop_set()),
        per_class=per_class_figures(names, labels_per_class, answered),
        curve=_curve(store, current),
    )


def _curve(store: Store, current: Sequence) -> list[CurvePoint]:
    """One point per round: labels in the rounds before it (what its model learnt from)."""
    by_round = Counter(int(r["round"]) for r in current if r["label"] is not None and r["label"] >= 0)
    points, labelled = [], 0
    for row in store.rounds():
        number = int(row["number"])
        points.append(CurvePoint(number, labelled, row["batch_accuracy"], row["test_accuracy"]))
        labelled += by_round.get(number, 0)
    return points
