"""Corrections to confirmed batches, below the UI: the store's history, the learner's L
with both engines (a retrain running or not), reopening, and the schema migration."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import torch

from aeep_core import locations
from aeep_core.learning.learner import SKIPPED
from aeep_core.session import LabellingSession, ProjectSettings, StoreError
from aeep_core.store import SCHEMA_VERSION
from aeep_core.store.export import export_rows
from aeep_core.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_V1
from tests.conftest import make_image_folder

FAST = {"min_steps": 10, "max_steps": 10}


def settings(**kw) -> ProjectSettings:
    base = dict(
        classes=["class0", "class1", "class2"], keys=["1", "2", "3"], batch_size=5, device="cpu", train=FAST, candidates=60
    )
    return ProjectSettings(**{**base, **kw})


PIPELINED = dict(pipelined=True, steps_per_label=3, seed=1)


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "images", per_class=10)


def truth(s: LabellingSession, item: int) -> int:
    return int(s.pool.labels[item])


def answer_batch(s: LabellingSession, skip: int | None = None) -> None:
    for pos, it in enumerate(s.batch.items):
        if it.answer is None:
            s.label(pos, SKIPPED if pos == skip else truth(s, it.item_id))
    s.confirm_batch()


def two_rounds(s: LabellingSession) -> None:
    """Round 1 (random) with its last card skipped, round 2 (chosen by a model) answered."""
    s.prepare_next_batch()
    answer_batch(s, skip=4)
    s.prepare_next_batch()
    answer_batch(s)


def test_a_correction_is_appended_used_for_training_and_exported(folder, tmp_path):
    project = tmp_path / "p"
    with LabellingSession.open(folder, settings(), project_dir=project) as s:
        two_rounds(s)
        items = s.review.items()
        assert [(it.round, it.position) for it in items] == [(1, p) for p in range(5)] + [(2, p) for p in range(5)]
        assert items[4].answer == SKIPPED and items[0].predicted is None and items[5].predicted is not None
        target = items[1]
        wrong = (truth(s, target.item_id) + 1) % 3
        s.review.correct(target.item_id, wrong)
        assert s.learner.labels[target.item_id] == wrong  # the next training set
        # un-skip: the skipped card gets a class and enters L
        skipped = items[4].item_id
        s.review.correct(skipped, 2)
        assert s.learner.labels[skipped] == 2 and skipped not in s.learner.skipped
        history = s.review.history(target.item_id)
        assert [(h.label, h.round, h.correction) for h in history] == [(truth(s, target.item_id), 1, False), (wrong, 1, True)]
        assert history[0].at <= history[1].at and history[1].corrected_after == 2
        fresh = {it.item_id: it for it in s.review.items()}
        assert fresh[target.item_id].answer == wrong and fresh[target.item_id].corrected
        assert s.stats.labelled == 10 and s.stats.skipped == 0
        # the open batch's items are answered on the labelling screen, not here
        s.prepare_next_batch()
        on_screen = s.batch.items[0].item_id
        with pytest.raises(StoreError, match="no confirmed batch"):
            s.review.correct(on_screen, 0)
        with pytest.raises(ValueError, match="not a class"):
            s.review.correct(target.item_id, 7)
        assert on_screen not in {it.item_id for it in s.review.items()}
        labels_live = list(s.learner.labels.items())
    rows = {r["path"]: r for r in export_rows(project)}
    assert rows[str(folder.resolve() / target.name)]["label"] == f"class{wrong}"
    assert rows[str(folder.resolve() / target.name)]["round"] == 1
    assert rows[str(folder.resolve() / items[4].name)]["label"] == "class2"
    with LabellingSession.open(folder, project_dir=project) as again:
        # reopening replays the corrections where they were made: the same L, in the same order
        assert list(again.learner.labels.items()) == labels_live


def test_back_to_the_pool_and_skipping_a_label(folder, tmp_path):
    with LabellingSession.open(folder, settings(), project_dir=tmp_path / "p") as s:
        two_rounds(s)
        items = s.review.items()
        skipped, labelled = items[4].item_id, items[6].item_id
        s.review.correct(skipped, None)  # un-skip without a class: asked again later
        assert skipped in s.learner.unlabelled_ids() and skipped not in s.learner.skipped
        s.review.correct(labelled, SKIPPED)
        assert labelled not in s.learner.labels and labelled in s.learner.skipped
        assert [h.label for h in s.review.history(skipped)] == [SKIPPED, None]
        assert s.stats.labelled == 8 and s.stats.skipped == 1


def test_a_correction_during_a_retrain_waits_for_it_and_is_not_lost(folder, tmp_path):
    slow = settings(train={"min_steps": 100_000, "max_steps": 100_000})
    with LabellingSession.open(folder, slow, project_dir=tmp_path / "p") as s:
        s.prepare_next_batch()
        answer_batch(s)
        item = s.review.items()[0].item_id
        wrong = (truth(s, item) + 1) % 3
        training, stop = threading.Event(), threading.Event()

        def progress(stage, done, total):
            if stage == "train" and done > 2:
                training.set()

        worker = threading.Thread(target=lambda: s.prepare_next_batch(progress=progress, should_stop=stop.is_set))
        worker.start()
        try:
            assert training.wait(60)
            s.review.correct(item, wrong)  # returns at once: saved, queued behind the retrain
            assert s.learner.labels[item] == truth(s, item)  # L does not change under the retrain
            assert s.review.history(item)[-1].label == wrong
        finally:
            stop.set()
            worker.join(60)
        assert s.learner.labels[item] == wrong


def _pipelined_run(folder, project, crash: bool) -> tuple[list[str], dict[int, int], list[torch.Tensor]]:
    """Two rounds, then a correction among the third batch's answers; crash there or not."""
    s = LabellingSession.open(folder, settings(**PIPELINED), project_dir=project)
    two_rounds(s)
    s.prepare_next_batch()
    target = s.review.items()[2].item_id
    s.label(0, truth(s, s.batch.items[0].item_id))
    s.review.correct(target, (truth(s, target) + 1) % 3)
    s.label(1, truth(s, s.batch.items[1].item_id))
    if crash:  # what SIGKILL leaves: the trainer gone, the database closed without a goodbye
        s.engine.close()
        s._store.close()
        s = LabellingSession.open(folder, project_dir=project)
    assert s.engine._pipe.wait_idle(60)
    labels = dict(s.learner.labels)
    weights = [w.clone() for w in s.learner.model.state_dict().values()]
    answer_batch(s)
    names = [it.name for it in s.prepare_next_batch().items]
    s.close()
    return names, labels, weights


def test_pipelined_correction_reaches_the_trainer_and_resumes_exactly(folder, tmp_path):
    torch.set_num_threads(1)
    expected, live, trained = _pipelined_run(folder, tmp_path / "ref", crash=False)
    with LabellingSession.open(folder, project_dir=tmp_path / "ref") as s:
        target = s.review.items()[2]
        assert target.corrected and live[target.item_id] == target.answer != truth(s, target.item_id)
    resumed, labels, weights = _pipelined_run(folder, tmp_path / "run", crash=True)
    assert labels == live
    # the trainer replayed the correction in its place among the answers: the same steps
    assert all(torch.equal(a, b) for a, b in zip(weights, trained))
    assert resumed == expected


def test_pipelined_pool_used_up_then_one_item_back(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=3)  # 9 items: two batches of 5 and 4
    with LabellingSession.open(folder, settings(**PIPELINED), project_dir=tmp_path / "p") as s:
        two_rounds(s)
        assert s.prepare_next_batch() is None and s.finished
        back = s.review.items()[3].item_id
        s.review.correct(back, None)
        assert not s.finished
        batch = s.prepare_next_batch()
        assert [it.item_id for it in batch.items] == [back]


def test_model_predictions_come_from_the_newest_checkpoint_without_touching_the_generator(folder, tmp_path):
    with LabellingSession.open(folder, settings(), project_dir=tmp_path / "p") as s:
        s.prepare_next_batch()
        answer_batch(s)
        items = [it.item_id for it in s.review.items()]
        assert s.review.model_predictions(items) is None  # no trained model yet
        batch = s.prepare_next_batch()
        before = torch.get_rng_state()
        predicted, confidence = s.review.model_predictions([it.item_id for it in batch.items])
        assert torch.equal(before, torch.get_rng_state())
        # the model that chose the batch: its stored guesses again
        assert predicted.tolist() == [it.predicted for it in batch.items]
        assert confidence == pytest.approx([it.confidence for it in batch.items], abs=1e-5)


def _downgrade(db, version: int) -> None:
    """Rewrite a current database as schema ``version`` (what that version's code wrote)."""
    old = db.with_name("old.sqlite3")
    c = sqlite3.connect(old, isolation_level=None)
    script = SCHEMA_V1 + "".join(MIGRATIONS[v] for v in range(1, version))
    c.executescript(script + f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version};")
    c.execute("ATTACH ? AS cur", (str(db),))
    for table in ("settings", "items", "checkpoints", "rounds", "round_items", "labels"):
        cols = [r[1] for r in c.execute(f"PRAGMA main.table_info({table})")]
        c.execute(f"INSERT INTO main.{table} SELECT {', '.join(cols)} FROM cur.{table}")
    c.execute("DETACH cur")
    c.close()
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    old.replace(db)


def test_migration_to_corrections_keeps_every_answer(folder, tmp_path):
    project = tmp_path / "p"
    with LabellingSession.open(folder, settings(), project_dir=project) as s:
        two_rounds(s)
        s.prepare_next_batch()
        s.label(0, 1)
        before = [tuple(r) for r in s._store.query("SELECT item_id, round, label, at FROM labels ORDER BY id")]
        labels_before = list(s.learner.labels.items())
    db = locations.project_db(project)
    _downgrade(db, 2)
    with sqlite3.connect(db) as c:
        assert "corrected_after" not in [r[1] for r in c.execute("PRAGMA table_info(labels)")]
    c.close()
    with LabellingSession.open(folder, project_dir=project) as s:
        store = s._store
        assert store.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert [tuple(r) for r in store.query("SELECT item_id, round, label, at FROM labels ORDER BY id")] == before
        assert store.query("SELECT COUNT(*) FROM labels WHERE corrected_after IS NOT NULL")[0][0] == 0
        assert store.query("SELECT 1 FROM sqlite_master WHERE name = 'round_items_item'")
        assert list(s.learner.labels.items()) == labels_before and s.batch.items[0].answer == 1
        item = s.review.items()[0].item_id
        s.review.correct(item, 2)  # the new column works on a migrated database
        assert s.review.history(item)[-1].corrected_after == 2
    assert (project / "project.sqlite3.v2.bak").exists()


def test_listing_thousands_of_items_is_fast(tmp_path):
    """The review lists every confirmed item from one query; measured, not assumed."""
    from aeep_core.store import Store

    store = Store.create(tmp_path / "p", {"project": {"classes": ["a", "b"], "keys": ["1", "2"]}})
    try:
        n = 5000
        with store.transaction() as c:
            c.executemany("INSERT INTO items (path, hash, first_seen) VALUES (?, ?, 0)", [(f"{i}.png", str(i)) for i in range(n)])
            for r in range(1, n // 50 + 1):
                c.execute("INSERT INTO rounds (number, status, created_at, engine) VALUES (?, 'done', 0, '{}')", (r,))
                c.executemany(
                    "INSERT INTO round_items VALUES (?, ?, ?, 0, 0, 0.5)", [(r, p, (r - 1) * 50 + p + 1) for p in range(50)]
                )
            c.executemany(
                "INSERT INTO labels (item_id, round, label, at) VALUES (?, ?, 1, 0)", [(i + 1, i // 50 + 1) for i in range(n)]
            )
        start = time.perf_counter()
        rows = store.reviewable_items()
        took = time.perf_counter() - start
        assert len(rows) == n and took < 2.0, took
    finally:
        store.close()
