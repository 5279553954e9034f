"""The pipelined loop: training runs while the person labels; the next batch is chosen ahead."""

import time

import numpy as np

from aeep_core.data import load_dataset
from aeep_core.learning.learner import SKIPPED, ActiveLearner
from aeep_core.learning.pipelined import PipelinedLearner
from aeep_core.learning.training import TrainConfig
from aeep_core.strategies import make_strategy


def _pipeline(image_folder, lookahead=2, k=5, resume=None):
    ds = load_dataset(image_folder)
    learner = ActiveLearner(
        ds.pool, make_strategy("aeep"), config=TrainConfig(min_steps=15, max_steps=15), device="cpu", seed=0, candidates=50
    )
    return ds.pool, PipelinedLearner(learner, batch_size=k, lookahead=lookahead, steps_per_label=3, resume=resume)


def test_every_label_enters_training_exactly_once(image_folder):
    pool, pipe = _pipeline(image_folder)
    batch = pipe.start()
    try:
        for round_ in range(4):
            truth = pool.labels[batch.ids]
            for pos, y in enumerate(truth):
                if round_ == 1 and pos == 0:
                    pipe.answer(pos, (y + 1) % pool.n_classes)  # a slip of the finger ...
                    time.sleep(0.05)
                    pipe.answer(pos, y)  # ... corrected: the item must not enter twice
                elif round_ == 2 and pos == 1:
                    pipe.answer(pos, y)
                    time.sleep(0.05)
                    pipe.answer(pos, SKIPPED)  # labelled, then skipped: it must leave training
                else:
                    pipe.answer(pos, y)
            batch = pipe.next_batch(timeout=60)
        assert pipe.wait_idle()
    finally:
        pipe.close()
    learner = pipe.learner
    assert len(pipe.stats.fed) == len(set(pipe.stats.fed))
    assert sorted(pipe.stats.fed) == sorted(learner.labels)
    assert len(learner.labels) == 4 * 5 - 1 and len(learner.skipped) == 1
    assert all(learner.labels[i] == pool.labels[i] for i in learner.labels)


def test_batches_chosen_during_training_never_repeat_labelled_or_on_screen_items(image_folder):
    pool, pipe = _pipeline(image_folder, lookahead=4)  # choose after the first answer of each batch
    batch = pipe.start()
    seen: set[int] = set()
    steps_at_selection = []
    try:
        for _ in range(5):
            on_screen = set(batch.ids.tolist())
            assert not on_screen & seen, "a labelled item came back"
            for pos, y in enumerate(pool.labels[batch.ids]):
                pipe.answer(pos, y)
                time.sleep(0.1)  # the person is slow: training goes on meanwhile
            seen |= on_screen
            selections = pipe.stats.selections
            steps_at_selection.append(pipe.stats.steps)
            batch = pipe.next_batch(timeout=60)
            assert pipe.stats.selections == selections + 1 or selections >= 1
            assert len(set(batch.ids.tolist())) == len(batch.ids)
    finally:
        pipe.close()
    # training kept running between selections: the step count grows batch after batch
    assert all(b > a for a, b in zip(steps_at_selection, steps_at_selection[1:]))
    assert pipe.learner.strategy.m is not None and len(pipe.learner.strategy.history) >= 3


def test_exhausted_pool_ends_with_none(image_folder):
    ds = load_dataset(image_folder)
    small = ds.pool.subset(np.arange(8))
    learner = ActiveLearner(small, make_strategy("random"), config=TrainConfig(min_steps=5, max_steps=5), device="cpu")
    pipe = PipelinedLearner(learner, batch_size=4, lookahead=0, steps_per_label=2)
    batch = pipe.start()
    try:
        for pos, y in enumerate(small.labels[batch.ids]):
            pipe.answer(pos, y)
        batch = pipe.next_batch(timeout=60)
        for pos, y in enumerate(small.labels[batch.ids]):
            pipe.answer(pos, y)
        assert pipe.next_batch(timeout=60) is None
    finally:
        pipe.close()


def test_a_crash_mid_batch_resumes_to_the_same_next_batches(image_folder):
    """Snapshot when a batch is chosen + the answers given since = the same future."""
    pool, pipe = _pipeline(image_folder)
    log: list[tuple[int, int]] = []  # every answer (item, label) in order, as a store keeps them
    batches, snapshots, log_at_batch = [], [], []
    batch = pipe.start()
    try:
        for _ in range(4):
            batches.append(batch)
            snapshots.append(pipe.last_snapshot)
            log_at_batch.append(len(log))
            for pos, y in enumerate(pool.labels[batch.ids]):
                pipe.answer(pos, int(y))
                log.append((int(batch.ids[pos]), int(y)))
            batch = pipe.next_batch(timeout=60)
        batches.append(batch)
    finally:
        pipe.close()

    # crash while batch 2 is on screen, after two of its answers
    snap, current = snapshots[2], batches[2]
    shown = current.ids
    given = [(p, int(pool.labels[shown[p]])) for p in range(2)]
    backlog = log[snap["absorbed"] : log_at_batch[2]]
    _, again = _pipeline(image_folder, resume=snap)
    # the batch on screen (ids, exploration flags, guesses) comes from the store in a real session
    again.start(current=current, backlog=backlog, answered=given)
    try:
        for pos in range(2, len(shown)):
            again.answer(pos, int(pool.labels[shown[pos]]))
        nxt = again.next_batch(timeout=60)
        np.testing.assert_array_equal(nxt.ids, batches[3].ids)
        np.testing.assert_array_equal(nxt.exploration, batches[3].exploration)
    finally:
        again.close()


def test_a_training_backlog_never_holds_up_the_choice(image_folder):
    """A machine far too slow for its steps per answer: the lookahead point still brings a
    choice within ``choose_within``, and the snapshot records the steps left to train."""
    ds = load_dataset(image_folder)
    learner = ActiveLearner(ds.pool, make_strategy("aeep"), device="cpu", seed=0, candidates=50)
    k = 6
    pipe = PipelinedLearner(learner, batch_size=k, lookahead=2, steps_per_label=5_000, choose_within=0.3)
    batch = pipe.start()
    try:
        start = time.perf_counter()
        for pos, y in enumerate(ds.pool.labels[batch.ids]):
            pipe.answer(pos, int(y))
        nxt = pipe.next_batch(timeout=120)
        waited = time.perf_counter() - start
        assert nxt is not None and not set(nxt.ids) & set(batch.ids)
        owed = pipe.last_snapshot["owed"]
        assert owed > 5_000, owed  # most of 30,000 steps were still owed when the batch was chosen
        assert waited < 60, waited  # 30,000 steps take minutes; choosing took seconds
    finally:
        pipe.close()
    again = PipelinedLearner(learner, batch_size=k, steps_per_label=5_000, resume=pipe.last_snapshot)
    assert again._owed == owed  # a resumed trainer still trains what was owed


def test_the_averaged_weights_follow_training_from_the_first_steps():
    """The choosing model is an average of the trainer's weights; early on it must not be
    dominated by the untrained start (a plain 0.995 average was, for hundreds of steps)."""
    import torch
    from torch.optim.swa_utils import AveragedModel

    from aeep_core.learning.pipelined import warmed_ema

    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    averaged = AveragedModel(net, avg_fn=warmed_ema(0.995))
    averaged.update_parameters(net)  # the first update copies the untrained weight
    with torch.no_grad():
        net.weight.fill_(1.0)  # training moved the weight from 0 to 1 and keeps it there
    for _ in range(100):
        averaged.update_parameters(net)
    assert float(averaged.module.weight.detach()) > 0.9  # a plain 0.995 average: 1 - 0.995^99 = 0.39


def test_the_first_batch_gives_the_new_network_a_full_first_round(image_folder):
    ds = load_dataset(image_folder)
    learner = ActiveLearner(ds.pool, make_strategy("random"), config=TrainConfig(min_steps=40, max_steps=40), device="cpu")
    pipe = PipelinedLearner(learner, batch_size=4, lookahead=0, steps_per_label=2)
    batch = pipe.start()
    try:
        for pos, y in enumerate(ds.pool.labels[batch.ids]):
            pipe.answer(pos, int(y))
        assert pipe.wait_idle(120)
        assert pipe.stats.steps == 40  # 4 answers x 10 steps: min_steps by the end of batch 1
        batch = pipe.next_batch(timeout=120)
        pipe.answer(0, int(ds.pool.labels[batch.ids[0]]))
        assert pipe.wait_idle(120)
        assert pipe.stats.steps == 42  # then steps_per_label per answer
    finally:
        pipe.close()


def test_the_trainer_thread_chooses_with_torchs_thread_count_in_every_native_pool(image_folder, monkeypatch):
    """OpenMP counts threads per thread: a limit set in the process's main thread left the
    trainer thread's k-means on every core, and on 2 cores the UI's keys waited for it."""
    import os

    import pytest
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: every pool already has one thread")
    seen: list[set[int]] = []
    select = PipelinedLearner._select

    def recording_select(self):
        seen.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"})
        return select(self)

    monkeypatch.setattr(PipelinedLearner, "_select", recording_select)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):  # the main thread's limit, as a child process sets it
            pool, pipe = _pipeline(image_folder, lookahead=4)
            batch = pipe.start()
            try:
                for pos, y in enumerate(pool.labels[batch.ids]):
                    pipe.answer(pos, y)
                pipe.next_batch(timeout=60)
            finally:
                pipe.close()
    finally:
        torch.set_num_threads(before)
    assert seen and all(threads == {1} for threads in seen), seen


def test_a_slow_machine_chooses_its_first_batch_further_ahead(image_folder, monkeypatch):
    """Before any choice is timed, the first batch's lookahead comes from the measured
    training rate: a first choice takes about 80 steps' time per 10,000 candidates."""
    from aeep_core.learning import pipelined
    from aeep_core.learning.pipelined import FIRST_CHOICE_STEPS, Pace

    assert Pace.first_lookahead(6.5, least=3, k=20) == 8  # 6.5 s at a label a second, one to spare
    assert Pace.first_lookahead(0.4, least=3, k=20) == 3 and Pace.first_lookahead(60.0, least=3, k=20) == 19
    lookaheads = {}
    for rate in (0.002, 1000.0):  # steps/s: a machine that needs the whole batch, and a fast one
        monkeypatch.setattr(pipelined, "training_steps_per_second", lambda pool, rate=rate: rate)
        ds = load_dataset(image_folder)
        learner = ActiveLearner(
            ds.pool, make_strategy("aeep"), config=TrainConfig(min_steps=6, max_steps=6), device="cpu", seed=0, candidates=50
        )
        pipe = PipelinedLearner(learner, batch_size=8, lookahead=3, steps_per_label=None, follow_pace=True)
        pipe.start()
        try:
            deadline = time.monotonic() + 30
            while pipe.steps_per_label == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            lookaheads[rate] = pipe._batch_lookahead
        finally:
            pipe.close()
    assert FIRST_CHOICE_STEPS * 50 / 10_000 / 0.002 > 5  # the estimate exceeds the batch
    assert lookaheads == {0.002: 7, 1000.0: 3}  # at most k - 1; the least when choosing is quick
