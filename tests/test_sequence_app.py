"""The labelling app on a folder of patient sequences, driven with Textual's Pilot.

Real session and store, real (tiny) training: a batch of patients shows as timeline cards,
is labelled with the class keys, and the next batch arrives from a model trained on them.
"""

from __future__ import annotations

import time

from aeep_core.session import ProjectSettings
from aeep_tui.app import LabellingApp
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.widgets.timeline import TimelineCard
from tests.sequences_fixtures import write_jsonl_folder
from tests.test_app import title

SIZE = (140, 44)


async def _until(pilot, condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def _batch_ready(app, round_: int):
    def ready() -> bool:
        screen = next((s for s in app.screen_stack if isinstance(s, LabellingScreen)), None)
        return (
            screen is not None
            and not screen.busy
            and app.session is not None
            and app.session.batch is not None
            and app.session.batch.round == round_
            and len(screen.cards) == len(app.session.batch.items)
            and all(c.is_mounted for c in screen.cards)
        )

    return ready


async def test_label_a_batch_of_patients(tmp_path):
    folder = write_jsonl_folder(tmp_path / "patients", per_class=15, seed=1)
    settings = ProjectSettings(
        classes=["sick", "well"],
        keys=["1", "2"],
        modality="sequence",
        batch_size=4,
        device="cpu",
        train={"min_steps": 10, "max_steps": 10},
        candidates=200,
    )
    app = LabellingApp(folder, settings, confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, _batch_ready(app, 1), what="the first batch of patients")
        screen = app.screen
        assert app.session.pool.modality == "sequence" and len(screen.cards) == 4
        events = app.session.pool.meta["events"]
        for card, item in zip(screen.cards, app.session.batch.items):
            timeline = card.query_one(TimelineCard)
            assert timeline.events == events[item.item_id] and timeline.events  # the patient's own history
            assert title(card) == item.name

        for key in "1212":
            await pilot.press(key)
        assert [it.answer for it in app.session.batch.items] == [0, 1, 0, 1]

        await pilot.press("enter")
        await _until(pilot, _batch_ready(app, 2), what="the batch after retraining")
        assert app.session.stats.labelled == 4
        assert all(it.predicted is not None for it in app.session.batch.items)
        assert all(card.query(TimelineCard) for card in app.screen.cards)
        await pilot.press("q")
    assert app.session is None
