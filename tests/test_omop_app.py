"""The labelling app opens an OMOP folder directly (upper-case CSV names, no labels of its own)."""

from __future__ import annotations

import pytest

pytest.importorskip("duckdb", reason="OMOP import needs the duckdb package (pip install 'duckdb>=1.1')")

from aeep_core.session.session import ProjectSettings  # noqa: E402
from aeep_tui.app import LabellingApp  # noqa: E402
from aeep_tui.widgets.timeline import TimelineCard  # noqa: E402
from tests.omop_fixtures import event_row, person_row, write_omop  # noqa: E402
from tests.test_sequence_app import SIZE, _batch_ready, _until  # noqa: E402


async def test_label_opens_an_omop_folder(tmp_path):
    persons = [person_row(p, f"{1950 + p}-01-01") for p in range(1, 13)]
    cond = [
        event_row("condition_occurrence", i, 1 + i % 12, f"20{10 + i % 9}-01-15", "320128" if i % 2 else "40481087", "x")
        for i in range(1, 61)
    ]
    folder = write_omop(tmp_path / "omop", upper=True, persons=persons, events={"condition_occurrence": cond})
    settings = ProjectSettings(
        classes=["yes", "no"],
        keys=["1", "2"],
        modality="sequence",
        batch_size=4,
        device="cpu",
        train={"min_steps": 10, "max_steps": 10},
        candidates=200,
    )
    app = LabellingApp(folder, settings, confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, _batch_ready(app, 1), what="the first batch of OMOP persons")
        assert app.session.pool.modality == "sequence" and len(app.screen.cards) == 4
        timeline = app.screen.cards[0].query_one(TimelineCard)
        assert {e["text"] for e in timeline.events} <= {"Essential hypertension", "Viral sinusitis"}
        for key in "1212":
            await pilot.press(key)
        assert [it.answer for it in app.session.batch.items] == [0, 1, 0, 1]
