"""Knowing when to stop: Wilson intervals, Cohen's kappa, the stabilizing-predictions hint,
the stop set recorded by both engines, and the report built from a real store."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
import torch

from aeep_core import locations
from aeep_core.pool import Pool
from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_core.session.stats import (
    KAPPA_THRESHOLD,
    KAPPA_WINDOW,
    MIN_RELIABLE_LABELS,
    build_report,
    cohen_kappa,
    consecutive_kappas,
    stopping_hint,
    wilson_interval,
)
from aeep_core.store import SCHEMA_VERSION, Store
from aeep_core.store.classes import read_classes
from aeep_core.store.items import sync_items
from aeep_core.store.schema import MIGRATIONS
from tests.conftest import make_image_folder


def settings(**kw) -> ProjectSettings:
    base = dict(
        classes=["class0", "class1", "class2"],
        keys=["1", "2", "3"],
        batch_size=5,
        device="cpu",
        train={"min_steps": 10, "max_steps": 10},
        candidates=60,
    )
    return ProjectSettings(**{**base, **kw})


# --- the maths on constructed numbers -------------------------------------------------
def test_wilson_interval_matches_the_formula_worked_by_hand():
    # 8 right of 10, z = 1.96: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.7166;
    # half-width 1.96 / 1.38416 * sqrt(0.016 + 1.96²/400) = 0.2267 -> (0.4902, 0.9433)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(10, 10)  # all right: the interval still has width
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)


def test_cohen_kappa_agrees_with_the_textbook_and_small_text():
    # small-text's own test values: 0.444 for these two raters
    assert cohen_kappa([0, 1, 1, 2, 1], [0, 1, 2, 2, 0], 3) == pytest.approx(0.4444, abs=1e-3)
    assert cohen_kappa([0, 0, 0], [0, 0, 0], 2) == 1.0  # identical, even constant: 1
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0], 2) == pytest.approx(-1.0)
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    b[:150] = a[:150]
    assert cohen_kappa(a, b, 4) == pytest.approx(cohen_kappa_score(a, b))


def _rounds(predictions: list[list[int]]) -> list[tuple[int, list[int | None]]]:
    return [(r + 2, list(p)) for r, p in enumerate(predictions)]


def test_stable_predictions_hint_stop():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 3, 1000).tolist()
    # a model still learning for two rounds, then four rounds that agree on >= 99.9%
    changing = [rng.integers(0, 3, 1000).tolist(), rng.integers(0, 3, 1000).tolist()]
    stable = [base, base, [*base[:-1], (base[-1] + 1) % 3], base]
    kappas = consecutive_kappas(_rounds(changing + stable), 3)
    assert [r for r, _ in kappas] == [3, 4, 5, 6, 7]
    hint = stopping_hint([k for _, k in kappas])
    assert hint.stop and hint.mean_kappa >= KAPPA_THRESHOLD and hint.message == "stop: predictions stable"
    assert (KAPPA_WINDOW, KAPPA_THRESHOLD) == (3, 0.99)  # small-text KappaAverage's defaults


def test_predictions_that_still_change_do_not_hint_stop():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 3, 1000)
    flipped = base.copy()
    flipped[:30] = (flipped[:30] + 1) % 3  # 3% of the stop set changes its class: kappa ~0.955
    kappas = [k for _, k in consecutive_kappas(_rounds([base.tolist(), base.tolist(), base.tolist(), flipped.tolist()]), 3)]
    assert kappas[:2] == [1.0, 1.0] and kappas[2] < 0.97
    hint = stopping_hint(kappas)
    assert not hint.stop and hint.mean_kappa < KAPPA_THRESHOLD and "keep labelling" in hint.message
    # two stable pairs are not enough: the window needs three
    early = stopping_hint([1.0, 1.0])
    assert not early.stop and early.mean_kappa is None and "too early" in early.message


def test_items_gone_from_the_folder_are_left_out_of_kappa():
    kappas = consecutive_kappas([(2, [0, 1, None, 2]), (3, [0, 1, 1, None])], 3)
    assert kappas == [(3, 1.0)]  # compared on the two items both rounds predicted


# --- recorded by a real session -------------------------------------------------------
def _answer(session: LabellingSession, wrong: set[int] = frozenset(), skip: set[int] = frozenset()) -> None:
    """Answer the batch: the truth, except ``wrong`` positions (the next class) and skips."""
    for pos, it in enumerate(session.batch.items):
        truth = int(session.pool.labels[it.item_id])
        session.label(pos, SKIPPED if pos in skip else (truth + 1) % 3 if pos in wrong else truth)


@pytest.mark.parametrize("pipelined", [False, True], ids=["plain", "pipelined"])
def test_both_engines_record_stop_set_predictions_and_the_report_counts_the_store(tmp_path, pipelined):
    data = make_image_folder(tmp_path / "img", per_class=20)
    test = make_image_folder(tmp_path / "test", per_class=4, seed=3)
    s = settings(pipelined=pipelined, steps_per_label=3, test_dir=str(test))
    with LabellingSession.open(data, s, project_dir=tmp_path / "p") as session:
        stop_set = session._store.stop_set()
        assert len(stop_set) == 60  # the whole (small) pool: min(1,000, 60)
        shown: list[tuple[int, int | None, int]] = []  # (round, guess, answer) of every card
        for round_ in range(4):
            batch = session.prepare_next_batch()
            # The pipelined trainer tests the choosing model after handing the batch over;
            # the app files that test with the round in a worker, as here (plain: no-op).
            session.record_late_evaluation()
            _answer(session, wrong={1} if round_ else set(), skip={4} if round_ == 2 else set())
            shown += [(batch.round, it.predicted, it.answer) for it in batch.items]
            session.confirm_batch()
        session.prepare_next_batch()
        session.record_late_evaluation()
        recorded = session._store.round_predictions()
        # every round chosen by a model recorded its stop-set predictions and test confusion
        assert [r for r, _, _ in recorded] == [2, 3, 4, 5]
        for _, stop, confusion in recorded:
            assert len(stop) == 60 and all(p in (0, 1, 2) for p in stop)
            assert np.asarray(confusion).sum() == 12  # the test folder's 12 items
        report = session.report()

    guessed = [(g, a) for _, g, a in shown if g is not None and a != SKIPPED]
    assert len(guessed) == 3 * 5 - 1  # round 1 had no model; one card skipped
    expected = np.zeros((3, 3), int)
    for g, a in guessed:
        expected[a, g] += 1
    assert report.guess_confusion.tolist() == expected.tolist()
    correct = sum(g == a for g, a in guessed)
    assert (report.estimate.correct, report.estimate.n) == (correct, 14)
    assert (report.estimate.low, report.estimate.high) == pytest.approx(wilson_interval(correct, 14))
    assert report.recent.rounds == [2, 3, 4]
    assert report.labels_per_class == np.bincount([a for _, _, a in shown if a != SKIPPED], minlength=3).tolist()
    assert report.skipped == 1 and report.stop_set_size == 60
    assert [r for r, _ in report.kappas] == [3, 4, 5] and report.hint.mean_kappa is not None
    assert report.test_round == 5 and report.test_confusion.sum() == 12
    assert [p.labelled for p in report.curve] == [0, 5, 10, 14, 19]  # one skip in round 3


def test_the_stop_set_is_drawn_once_and_kept(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=20)
    with LabellingSession.open(data, settings(), project_dir=tmp_path / "p") as session:
        first = session._store.stop_set()
        assert session.learner.stop_set is not None and len(session.learner.stop_set) == len(first)
    with LabellingSession.open(data, project_dir=tmp_path / "p") as session:
        assert session._store.stop_set() == first


def test_a_large_pool_gets_a_sample_of_1000(tmp_path):
    from aeep_core.session.stats import StopSet
    from aeep_core.store import Store

    store = Store.create(tmp_path / "p", {"project": {}})
    try:
        with store.transaction() as c:
            c.executemany(
                "INSERT INTO items (id, path, hash, first_seen) VALUES (?, ?, ?, 0)",
                [(i, f"{i}", f"h{i}") for i in range(1, 3001)],
            )
        stop = StopSet.load(store, list(range(1, 3001)), seed=0)
        assert len(stop.item_ids) == 1000 == len(set(stop.item_ids)) and stop.present.all()
        again = StopSet.load(store, [None, *range(2, 3001)], seed=5)  # another seed, item 1 gone: the same set
        assert again.item_ids == stop.item_ids
        assert again.align(np.zeros(int(again.present.sum()), int)).count(None) == (1 in stop.item_ids)
    finally:
        store.close()


def test_migration_adding_the_stop_tables_keeps_the_work(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=6)
    project = tmp_path / "p"
    with LabellingSession.open(data, settings(), project_dir=project) as s:
        s.prepare_next_batch()
        _answer(s)
        s.confirm_batch()
        s.prepare_next_batch()
        s.label(0, 1)
        before = [(it.name, it.answer, it.predicted) for it in s.batch.items]
    db = locations.project_db(project)
    # What the code before this migration wrote: the same database without its two tables
    # (looked up by content, so renumbering the migrations keeps the test meaningful).
    before_version = next(v for v, sql in MIGRATIONS.items() if "CREATE TABLE stop_set" in sql)
    c = sqlite3.connect(db)
    c.executescript(
        "DROP TABLE round_predictions; DROP TABLE stop_set; "
        "DROP TABLE class_changes; DROP TABLE classes; "  # and those of the migrations after it
        f"PRAGMA user_version = {before_version};"
    )
    c.close()
    with LabellingSession.open(data, project_dir=project) as s:
        assert s._store.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert [(it.name, it.answer, it.predicted) for it in s.batch.items] == before
        assert len(s._store.stop_set()) == 18  # drawn on the first open after the upgrade
        assert s._store.round_predictions() == []  # rounds from before have none
        _answer(s)
        s.confirm_batch()
        s.prepare_next_batch()
        assert [r for r, _, _ in s._store.round_predictions()] == [3]
    assert os.path.exists(project / f"project.sqlite3.v{before_version}.bak")


# --- per class, on a store written through its API ------------------------------------
ROSE, DAISY, TULIP, LILY = range(4)
FLOWERS = ["rose", "daisy", "tulip", "lily"]


def _round(store: Store, number: int, cards: list[tuple[int, int | None, int | None]]) -> None:
    """A confirmed round of (item id, the model's guess, the answer) cards."""
    store.add_round(number, [(item, False, guess, None if guess is None else 0.5) for item, guess, _ in cards], {}, {})
    for item, _, answer in cards:
        store.add_label(item, number, answer)
    store.finish_round(number, None, None, None)


def test_per_class_figures_count_labels_recall_and_rare_classes_from_the_store(tmp_path):
    pool = Pool(torch.arange(20, dtype=torch.uint8).reshape(20, 1, 1, 1), [f"{i}.png" for i in range(20)], FLOWERS)
    store = Store.create(tmp_path / "p", {"project": {"classes": FLOWERS}})
    try:
        ids, _ = sync_items(store, pool)
        item = [int(i) for i in ids if i is not None]
        _round(store, 1, [(item[0], None, ROSE), (item[1], None, ROSE), (item[2], None, TULIP)])  # no model yet
        _round(
            store,
            2,
            [
                *[(item[i], ROSE, ROSE) for i in (3, 4, 5)],
                (item[6], TULIP, ROSE),  # a wrong guess of tulip: a miss for rose, nothing for tulip's recall
                (item[7], DAISY, DAISY),
                (item[8], DAISY, DAISY),
                (item[9], ROSE, DAISY),
                (item[10], ROSE, TULIP),
                (item[11], ROSE, TULIP),
                (item[12], DAISY, LILY),  # corrected to tulip below: lily stays unseen
            ],
        )
        store.add_correction(item[12], TULIP)
        _round(
            store,
            3,
            [
                (item[13], ROSE, ROSE),
                (item[14], ROSE, ROSE),
                (item[15], DAISY, DAISY),
                (item[16], LILY, DAISY),
                (item[17], TULIP, SKIPPED),  # a skip counts nowhere
                (item[18], ROSE, None),  # taken back: nowhere either
            ],
        )
        report = build_report(store, read_classes(store))
    finally:
        store.close()

    rose, daisy, tulip, lily = report.per_class
    assert [f.name for f in report.per_class] == FLOWERS and [f.index for f in report.per_class] == [0, 1, 2, 3]
    assert [f.labels for f in report.per_class] == [8, 5, 4, 0] == report.labels_per_class
    assert report.skipped == 1
    # Recall: of the guessed cards answered c, those guessed c; round 1 had no guesses.
    assert [(f.recall.correct, f.recall.n) for f in report.per_class] == [(5, 6), (3, 5), (0, 3), (0, 0)]
    assert (rose.recall.low, rose.recall.high) == pytest.approx(wilson_interval(5, 6))
    assert rose.recall.accuracy == pytest.approx(5 / 6) and 0.4 < rose.recall.low < 5 / 6 < rose.recall.high < 1
    assert (tulip.recall.low, tulip.recall.high) == pytest.approx(wilson_interval(0, 3)) and tulip.recall.low == pytest.approx(
        0, abs=1e-12
    )
    assert lily.recall.accuracy is None
    # ... the row-wise reading of the same guesses-vs-answers matrix
    confusion = report.guess_confusion
    for f in report.per_class[:3]:
        assert (f.recall.correct, f.recall.n) == (confusion[f.index, f.index], confusion[f.index].sum())
    # Seen: at least one label; the warning below MIN_RELIABLE_LABELS (4 warns, 5 does not).
    assert MIN_RELIABLE_LABELS == 5
    assert [f.seen for f in report.per_class] == [True, True, True, False] and report.classes_seen == 3
    assert [f.unreliable for f in report.per_class] == [False, False, True, True]
