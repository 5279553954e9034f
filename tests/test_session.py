"""The labelling session: answers, undo, rounds, crash-safe resume, drift, read-only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aeep_core import locations
from aeep_core.session import SKIPPED, LabellingSession, ProjectLocked, ProjectSettings, StoreError
from tests.conftest import make_image_folder, shapes_image

FAST = {"min_steps": 10, "max_steps": 10}
WORKER = Path(__file__).with_name("session_worker.py")


def settings(**kw) -> ProjectSettings:
    base = dict(classes=["class0", "class1", "class2"], keys=["1", "2", "3"], batch_size=5, device="cpu", train=FAST)
    return ProjectSettings(**{**base, **kw})


def answer_all(s: LabellingSession, skip_last: bool = False) -> None:
    for pos, it in enumerate(s.batch.items):
        s.label(pos, SKIPPED if skip_last and pos == len(s.batch.items) - 1 else int(s.pool.labels[it.item_id]))


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images", per_class=10)


def test_new_project_needs_settings_and_lives_in_the_user_data_dir(small_folder):
    with pytest.raises(ValueError, match="settings"):
        LabellingSession.open(small_folder)
    with pytest.raises(ValueError, match="key"):
        LabellingSession.open(small_folder, settings(keys=["1"]))
    assert LabellingSession.find(small_folder) is None
    with LabellingSession.open(small_folder, settings()) as s:
        assert s.project_path == locations.project_folder(small_folder)
        assert str(s.project_path).startswith(str(locations.projects_dir()))
        assert len(s.pool) == 30 and s.drift.added == 30 and s.batch is None and not s.read_only
    assert LabellingSession.find(small_folder) == s.project_path
    # stored settings win over the ones passed on reopening
    with LabellingSession.open(small_folder, settings(batch_size=9)) as s:
        assert s.settings.batch_size == 5


def test_rounds_answers_undo_and_stats(small_folder):
    with LabellingSession.open(small_folder, settings(), project_dir=small_folder.parent / "p") as s:
        calls = []
        first = s.prepare_next_batch(progress=lambda *a: calls.append(a))
        assert first.round == 1 and len(first.items) == 5 and not calls  # cold start: no training
        assert all(it.predicted is None and not it.exploration for it in first.items)
        assert s.source_path(first.items[0].item_id) == small_folder.resolve() / first.items[0].name
        with pytest.raises(ValueError, match="not complete"):
            s.confirm_batch()
        answer_all(s)
        s.label(0, 2)  # relabel: the latest answer counts
        assert s.undo() == 0 and first.items[0].answer is None
        assert s.undo() == 4 and first.items[4].answer is None
        s.label(0, SKIPPED)
        s.label(4, int(s.pool.labels[first.items[4].item_id]))
        s.confirm_batch()
        assert s.batch is None and s.stats.labelled == 4 and s.stats.skipped == 1
        second = s.prepare_next_batch(progress=lambda *a: calls.append(a))
        stages = {c[0] for c in calls}
        assert {"train", "score", "evaluate"} <= stages and second.round == 2
        assert all(it.predicted is not None and 0 < it.confidence <= 1 for it in second.items)
        assert sum(it.exploration for it in second.items) == s.stats.m >= 1
        assert not {it.item_id for it in second.items} & {it.item_id for it in first.items}
        answer_all(s)
        s.confirm_batch()
        st = s.stats
        assert st.round == 2 and st.labelled == 9 and st.pool_size == 30 and st.device == "cpu"
        assert st.m_history == [None, st.m] and st.mp_history[0] is None and 0 <= st.mp_history[1] <= 1
        assert 0 <= st.batch_accuracy <= 1 and st.train_s > 0 and st.select_s > 0
        labels = s._store.query("SELECT label FROM labels ORDER BY id")
        assert len(labels) == 5 + 1 + 2 + 2 + 5  # append-only: relabel and undo are rows


def test_budget_finishes_the_session(small_folder):
    with LabellingSession.open(small_folder, settings(budget=7), project_dir=small_folder.parent / "p") as s:
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        b = s.prepare_next_batch()
        assert len(b.items) == 2  # only what the budget leaves
        answer_all(s)
        s.confirm_batch()
        assert s.finished and s.prepare_next_batch() is None


def test_reopen_mid_batch_continues_exactly(small_folder, tmp_path):
    def run(project: Path, interrupt: bool) -> list[str]:
        s = LabellingSession.open(small_folder, settings(seed=5), project_dir=project)
        for _ in range(2):
            s.prepare_next_batch()
            answer_all(s, skip_last=True)
            s.confirm_batch()
        s.prepare_next_batch()
        s.label(0, int(s.pool.labels[s.batch.items[0].item_id]))
        if interrupt:
            before = [(it.name, it.answer) for it in s.batch.items]
            s.close()
            s = LabellingSession.open(small_folder, project_dir=project)
            assert [(it.name, it.answer) for it in s.batch.items] == before
            assert s.learner.model is not None  # from the checkpoint
        answer_all(s)
        s.confirm_batch()
        names = [it.name for it in s.prepare_next_batch().items]
        s.close()
        return names

    assert run(tmp_path / "a", interrupt=True) == run(tmp_path / "b", interrupt=False)


def test_should_stop_records_nothing(small_folder):
    with LabellingSession.open(small_folder, settings(), project_dir=small_folder.parent / "p") as s:
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        assert s.prepare_next_batch(should_stop=lambda: True) is None and s.batch is None
        assert len(s._store.rounds()) == 1 and s.prepare_next_batch().round == 2


def test_drift_new_vanished_changed_and_renamed_files(small_folder, tmp_path):
    project = tmp_path / "p"
    with LabellingSession.open(small_folder, settings(), project_dir=project) as s:
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        labelled = sorted(s.pool.names[i] for i in s.learner.labels)
    gone, renamed, changed = labelled[0], labelled[1], labelled[2]
    (small_folder / gone).unlink()
    (small_folder / renamed).rename(small_folder / renamed.replace(".png", "-moved.png"))
    Image.fromarray(shapes_image(1, np.random.default_rng(99))).save(small_folder / changed)
    Image.fromarray(shapes_image(0, np.random.default_rng(98))).save(small_folder / "class0" / "new.png")
    shutil.copy(small_folder / "class1" / "009.png", small_folder / "class1" / "copy.png")
    with LabellingSession.open(small_folder, project_dir=project) as s:
        d = s.drift
        assert (d.added, d.vanished, d.changed, d.renamed) == (2, 1, 1, 1)
        assert ["class1/009.png", "class1/copy.png"] in [sorted(g) for g in d.duplicates]
        now = {s.pool.names[i] for i in s.learner.labels}
        assert renamed.replace(".png", "-moved.png") in now  # same content: same item, label kept
        assert gone not in now and changed not in now  # the changed file is a new, unlabelled item
        assert len(s.pool) == 30 + 1 and s.stats.labelled == 3


def test_second_writer_is_refused_and_read_only_is_allowed(small_folder, tmp_path):
    project = tmp_path / "p"
    with LabellingSession.open(small_folder, settings(), project_dir=project) as s:
        s.prepare_next_batch()
        s.label(0, 1)
        with pytest.raises(ProjectLocked, match=f"pid {os.getpid()}"):
            LabellingSession.open(small_folder, project_dir=project)
        with LabellingSession.open(small_folder, project_dir=project, read_only=True) as ro:
            assert ro.read_only and ro.batch.items[0].answer == 1
            with pytest.raises(StoreError, match="read-only"):
                ro.label(1, 1)
    LabellingSession.open(small_folder, project_dir=project).close()  # the lock was released


def _events(proc: subprocess.Popen, until) -> list[dict]:
    out = []
    for line in proc.stdout:
        out.append(json.loads(line))
        if until(out):
            return out
    raise AssertionError(f"worker ended early (rc {proc.wait()}): {proc.stderr.read()[-2000:]}")


def _gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends (or is only a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("separate", [False, True], ids=["trainer-in-process", "trainer-process"])
def test_sigkill_mid_batch_loses_nothing_and_continues_like_an_uninterrupted_run(tmp_path, separate):
    data = make_image_folder(tmp_path / "images", per_class=12)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    env["AEEP_SEPARATE_PROCESS"] = "1" if separate else "0"

    def worker(mode: str, project: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(data), str(project), "3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    procs = [worker("crash", tmp_path / "crash"), worker("resume", tmp_path / "crash")]
    crash, resumed = procs  # resume starts now, so its imports overlap, but waits for a cue
    watchdog = threading.Timer(240, lambda: [p.kill() for p in procs])  # a hung worker fails, never hangs
    watchdog.start()
    try:
        ev = _events(crash, lambda e: sum(1 for x in e if x["event"] == "label" and x["round"] == 3) >= 2)
        # While it runs, the project is its: a second writer is told the pid.
        with pytest.raises(ProjectLocked, match=f"pid {crash.pid}"):
            LabellingSession.open(data, project_dir=tmp_path / "crash")
        os.kill(crash.pid, signal.SIGKILL)
        assert crash.wait(timeout=30) == -signal.SIGKILL
        ev += [json.loads(line) for line in crash.stdout]  # anything printed before the kill landed
        trainer = [e["trainer"] for e in ev if e["event"] == "batch"][-1]
        assert (trainer is not None) == separate and trainer != crash.pid
        if separate:  # the UI's process is gone: its trainer process ends by itself
            assert _gone(trainer, within=15), f"trainer {trainer} outlived the killed app"
        given = [e for e in ev if e["event"] == "label"]
        batch3 = next(e for e in ev if e["event"] == "batch" and e["round"] == 3)
        assert 2 <= sum(e["round"] == 3 for e in given) < 6  # killed in the middle of batch 3

        # Every label given before the kill is in the store, as the current answer of its item.
        with LabellingSession.open(data, project_dir=tmp_path / "crash", read_only=True) as s:
            rows = s._store.query("SELECT i.path, l.label FROM labels l JOIN items i ON i.id = l.item_id ORDER BY l.id")
            current = {r["path"]: r["label"] for r in rows}  # later rows win: the latest answer
            assert all(current[e["name"]] == e["answer"] for e in given)
            assert s.batch.round == 3 and [it.name for it in s.batch.items] == batch3["names"]

        out_r, err_r = resumed.communicate("go\n", timeout=300)
    finally:
        watchdog.cancel()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert resumed.returncode == 0, err_r[-2000:]
    restored, *_, nxt = [json.loads(x) for x in out_r.splitlines()]
    assert restored["round"] == 3 and restored["names"] == batch3["names"]
    assert all(restored["answers"][e["position"]] == e["answer"] for e in given if e["round"] == 3)
    # ... and the batch after it is the one the uninterrupted run chose.
    expected = next(e for e in ev if e["event"] == "reference")
    assert nxt["event"] == "batch" and nxt["round"] == expected["round"] == 4
    assert nxt["names"] == expected["names"] and nxt["exploration"] == expected["exploration"]
    assert nxt["strategy"] == expected["strategy"] and len(expected["strategy"]["history"]) == 2  # m, mp of rounds 2-3


def test_idx_pool_items_are_named_rows_hashed_by_pixels(tmp_path):
    from tests.conftest import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    x = np.stack([shapes_image(i % 3, rng) for i in range(24)])
    write_idx(folder / "train-images-idx3-ubyte.gz", x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(24) % 3)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x[:6])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 3)
    with LabellingSession.open(folder, settings(classes=["0", "1", "2"])) as s:
        assert s.pool.names[5] == "train/00005" and s.source_path(5) is None and s.test is not None
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        s.prepare_next_batch()
        assert s.stats.test_accuracy is not None and 0 <= s.stats.accuracy_history[-1] <= 1
        batch = [it.name for it in s.batch.items]
    with LabellingSession.open(folder) as s:  # nothing drifted, nothing rehashed into new items
        assert not s.drift.any and [it.name for it in s.batch.items] == batch


def test_sequence_items_keep_their_identity_when_patients_join(tmp_path):
    from tests.sequences_fixtures import write_jsonl_folder

    folder = write_jsonl_folder(tmp_path / "ehr", per_class=8)
    with LabellingSession.open(folder, settings(classes=["sick", "well"], keys=["s", "w"])) as s:
        assert s.pool.modality == "sequence" and s.source_path(0) is None
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        labelled = sorted(s.pool.names[i] for i in s.learner.labels)
        assert s.prepare_next_batch().round == 2
    write_jsonl_folder(tmp_path / "more", per_class=2, seed=7)
    extra = (tmp_path / "more" / "patients.jsonl").read_text().replace('"pati-', '"new-')
    with (folder / "patients.jsonl").open("a") as fh:
        fh.write(extra)
    with LabellingSession.open(folder) as s:  # the embedding is retrained: the matrices change
        assert (s.drift.added, s.drift.changed) == (4, 0)
        assert sorted(s.pool.names[i] for i in s.learner.labels) == labelled


def test_prepare_in_a_worker_thread_while_the_ui_reads(small_folder):
    with LabellingSession.open(small_folder, settings(), project_dir=small_folder.parent / "p") as s:
        s.prepare_next_batch()
        answer_all(s)
        s.confirm_batch()
        result, errors = [], []
        worker = threading.Thread(target=lambda: result.append(s.prepare_next_batch()))
        worker.start()
        while worker.is_alive():  # what the UI thread does meanwhile
            try:
                _ = (s.stats, s.finished, s.batch)
            except Exception as exc:  # pragma: no cover - the failure this test looks for
                errors.append(exc)
            time.sleep(0.002)
        worker.join()
        assert not errors and result[0] is s.batch and s.stats.round == 2


def test_a_label_that_cannot_be_saved_is_not_shown_as_given(small_folder):
    with LabellingSession.open(small_folder, settings(), project_dir=small_folder.parent / "p") as s:
        s.prepare_next_batch()
        s.label(0, 1)
        pages = s._store.query("PRAGMA page_count")[0][0]
        s._store.query(f"PRAGMA max_page_count = {pages}")  # the disk is full, for real
        last = None
        with pytest.raises(StoreError, match="cannot save"):
            for i in range(5000):  # fill the last free page, then fail
                s.label(1, i % 3)
                last = i % 3
        assert last is not None and s.batch.items[1].answer == last and s.batch.items[0].answer == 1
    with LabellingSession.open(small_folder, project_dir=small_folder.parent / "p", read_only=True) as s:
        assert [it.answer for it in s.batch.items[:2]] == [1, last]
