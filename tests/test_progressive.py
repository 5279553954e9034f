"""A photo folder joins its pool while it is embedded (issue 28).

The first batch comes after one slice of the folder is embedded; the rest is embedded in a
child process, and later rounds choose among photos embedded since. A ``kill -9`` in the
middle loses at most the chunk in flight: labels stay, and embedding resumes where it
stopped. Real photos are generated (JPEG files), embedded by the shipped EfficientNet-Lite0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aeep_core import locations
from aeep_core.data.feature_store import open_store
from aeep_core.data.images import list_image_files
from aeep_core.data.progressive import FIRST_SLICE, seeded_order
from aeep_core.session import LabellingSession, ProjectSettings
from aeep_tui.app import LabellingApp
from tests.test_app import SIZE, batch_ready, panel_text, until

BACKBONE = "efficientnet-lite0"  # the faster shipped variant


def photo_folder(root: Path, n: int) -> Path:
    """``n`` small JPEG photos, alternately mostly red and mostly blue, in class folders."""
    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = ("red", "blue")[i % 2]
        pixels = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
        pixels[..., 0 if c == "red" else 2] += np.uint8(150)
        Image.fromarray(pixels).save(root / c / f"{i:05d}.jpg", quality=85)
    return root


def photo_settings() -> ProjectSettings:
    return ProjectSettings(
        ["red", "blue"], ["1", "2"], batch_size=4, device="cpu", backbone=BACKBONE, train={"min_steps": 10, "max_steps": 10}
    )


async def test_a_big_photo_folder_shows_its_first_batch_while_the_rest_is_embedded(tmp_path):
    folder = photo_folder(tmp_path / "photos", 5000)
    app = LabellingApp(folder, photo_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), timeout=90, what="the first batch")
        session = app.session
        first = len(session.pool)
        assert first == FIRST_SLICE
        progress = session.embedding_progress()
        assert progress is not None and progress.total == 5000 and progress.embedded < 5000
        # the pool is the head of the folder's seeded order: an unbiased sample of it
        head = [str(p.relative_to(folder)) for p in seeded_order(folder, list_image_files(folder), 0)[:first]]
        assert session.pool.names == head
        await until(pilot, lambda: "embedded" in panel_text(app, "#stat-embedded"), what="the embedding line")
        await until(pilot, lambda: session.embedding_progress().embedded > first, timeout=90, what="a second chunk")

        # Answer batches until one is chosen among photos embedded after the first batch.
        for round_ in range(2, 7):
            for item in session.batch.items:
                await pilot.press("12"[int(session.pool.labels[item.item_id])])
            await pilot.press("enter")
            await until(pilot, batch_ready(app, round_), timeout=60, what=f"batch {round_}")
            if any(item.item_id >= first for item in session.batch.items):
                break
        assert len(session.pool) > first
        assert any(item.item_id >= first for item in session.batch.items)
        assert session.embedding_progress() is not None  # 5,000 photos take minutes: still going
        await pilot.press("q")


_WORKER = """
import sys, time
from pathlib import Path
from aeep_core.session import LabellingSession
from tests.test_progressive import photo_settings

if __name__ == "__main__":
    folder, project = Path(sys.argv[1]), Path(sys.argv[2])
    with LabellingSession.open(folder, photo_settings(), project_dir=project, separate_process=True) as s:
        batch = s.prepare_next_batch()
        for position, item in enumerate(batch.items):
            s.label(position, int(s.pool.labels[item.item_id]))
        s.confirm_batch()
        while s.embedding_progress().embedded < 2 * %d:
            time.sleep(0.1)
        print("ready", flush=True)
        time.sleep(600)
"""


def test_kill_during_background_embedding_loses_nothing_and_resumes(tmp_path):
    folder = photo_folder(tmp_path / "photos", 1500)
    project = tmp_path / "project"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER % FIRST_SLICE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    worker = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(project)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        os.kill(worker.pid, signal.SIGKILL)  # the app's process, mid-embedding
    finally:
        worker.kill()
        worker.wait()
    stem = locations.feature_cache(folder.resolve(), BACKBONE)
    stored = open_store(stem).keys
    assert len(stored) >= 2 * FIRST_SLICE and len(set(stored)) == len(stored)

    with LabellingSession.open(folder, project_dir=project) as s:
        assert s.stats.labelled == 4  # the confirmed batch survived
        assert len(s.pool) >= len(stored)
        progress = s.embedding_progress()
        assert progress is not None and progress.total == 1500
        resumed_from = progress.embedded
        deadline = time.monotonic() + 90
        while s.embedding_progress() is not None and s.embedding_progress().embedded <= resumed_from:
            assert time.monotonic() < deadline, "embedding did not resume"
            time.sleep(0.2)
    again = open_store(stem).keys
    assert len(again) > len(stored) and len(set(again)) == len(again)  # nothing stored twice
    assert again[: len(stored)] == stored


def test_a_pool_in_random_order_draws_its_candidates_as_one_run_each_item_equally_often():
    import torch

    from aeep_core.learning.learner import ActiveLearner
    from aeep_core.pool import Pool
    from aeep_core.strategies import make_strategy

    pool = Pool(torch.zeros(100, 4), [str(i) for i in range(100)], ["a", "b"], modality="features", meta={"random_order": True})
    learner = ActiveLearner(pool, make_strategy("random"), candidates=10, device="cpu")
    learner.add_labels([3, 4, 5], [0, 1, 0])
    unlabelled = learner.unlabelled_ids()
    seen = np.zeros(100)
    for draw in range(2000):
        cand = learner._draw_candidates(np.random.default_rng(draw), unlabelled)
        at = np.searchsorted(unlabelled, cand)
        assert len(cand) == 10 and set(np.diff(at) % len(unlabelled)) == {1}  # one run of U, wrapping at the end
        seen[cand] += 1
    assert seen[[3, 4, 5]].sum() == 0
    share = seen[unlabelled] / 2000
    assert abs(share.mean() - 10 / 97) < 1e-9 and share.min() > 0.07 and share.max() < 0.14  # 10/97 each, in expectation


def test_a_round_reads_one_run_of_rows_for_its_guesses_and_its_candidates():
    """Self-training's guesses and the choice draw the same run of a random-order pool,
    so a feature store on disk reads it once a round; leaving out the batch on screen
    costs at most its own rows and a shift of the run by as many."""
    import torch

    from aeep_core.learning.learner import ActiveLearner
    from aeep_core.learning.training import TrainConfig
    from aeep_core.pool import Pool
    from aeep_core.strategies import make_strategy

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 600)
    features = torch.from_numpy((rng.normal(0, 1, (600, 8)) + truth[:, None] * 2).astype(np.float32))
    pool = Pool(features, [str(i) for i in range(600)], ["a", "b"], modality="features", meta={"random_order": True})
    config = TrainConfig(max_steps=20, min_steps=10, guess_steps=10, pseudo_label_steps=10)
    learner = ActiveLearner(pool, make_strategy("random"), config=config, candidates=100, device="cpu")
    learner.add_labels([0, 1, 2, 3], truth[:4])
    draws: list[np.ndarray] = []
    draw = learner._draw_candidates
    learner._draw_candidates = lambda r, u: draws.append(draw(r, u)) or draws[-1]  # type: ignore[method-assign]
    for exclude in (None, np.arange(10, 20)):
        draws.clear()
        learner.train()
        learner.propose(5, exclude=exclude)
        guessed, chosen_from = (set(d.tolist()) for d in draws)
        assert len(guessed - chosen_from) <= (0 if exclude is None else 2 * len(exclude))
        learner.teach(learner.propose(5), truth[:5])
