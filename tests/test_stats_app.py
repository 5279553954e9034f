"""The stats view and the command palette, through the real app (Pilot), a real store and
real (tiny) training."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from textual.color import Color
from textual.command import CommandPalette
from textual.geometry import Region

from aeep_core import locations
from aeep_core.session.stats import wilson_interval
from aeep_tui.app import PALETTE, LabellingApp
from aeep_tui.config import load_config
from aeep_tui.keys import CLASS_KEYS
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.screens.review import ReviewScreen
from aeep_tui.screens.stats import StatsScreen
from aeep_tui.widgets.class_table import ClassTable, fmt_recall
from aeep_tui.widgets.learning_curve import LearningCurve
from tests.conftest import make_image_folder
from tests.test_app import SIZE, batch_ready, quick_settings, until

WIDE = (150, 50)


def drawn(widget) -> str:
    """The widget's text as it is drawn on the screen."""
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height)))


async def _label_batches(pilot, app, n: int, wrong_first: bool = True) -> list[tuple[int | None, int]]:
    """Confirm ``n`` batches answering with the truth (the first card of each batch one
    class off, so the matrix has an error); return (guess, answer) of every card."""
    shown = []
    for round_ in range(1, n + 1):
        await until(pilot, batch_ready(app, round_), what=f"batch {round_}")
        items = app.session.batch.items
        for pos, it in enumerate(items):
            truth = int(app.session.pool.labels[it.item_id])
            answer = (truth + 1) % 3 if wrong_first and pos == 0 else truth
            await pilot.press(str(answer + 1))
            shown.append((it.predicted, answer))
        await pilot.press("enter")
    await until(pilot, batch_ready(app, n + 1), what="the batch after the last confirmed one")
    return shown


async def test_stats_view_after_three_batches_matches_the_store(image_folder, tmp_path):
    test = make_image_folder(tmp_path / "test", per_class=3, seed=4)
    app = LabellingApp(image_folder, quick_settings(test_dir=str(test), pipelined=False), confirm_setup=False)
    async with app.run_test(size=WIDE) as pilot:
        shown = await _label_batches(pilot, app, 3)
        labelling = app.screen
        await pilot.press("S")
        stats = app.screen
        assert isinstance(stats, StatsScreen)
        await until(pilot, lambda: stats.report is not None, what="the figures")
        report = stats.report

        # The matrix counts every guessed card against its answer, as the store holds them.
        guessed = [(g, a) for g, a in shown if g is not None]
        assert len(guessed) == 8  # rounds 2 and 3; round 1 had no model to guess
        expected = np.zeros((3, 3), int)
        for g, a in guessed:
            expected[a, g] += 1
        assert report.guess_confusion.tolist() == expected.tolist()
        rows = app.session._store.guesses()
        assert sum(1 for r in rows if r["label"] >= 0) == expected.sum()

        # The estimate and its interval, worked by hand: hits / n and Wilson's formula.
        correct = sum(g == a for g, a in guessed)
        low, high = wilson_interval(correct, 8)
        z = 1.959964
        p = correct / 8
        centre = (p + z * z / 16) / (1 + z * z / 8)
        half = z / (1 + z * z / 8) * np.sqrt(p * (1 - p) / 8 + z * z / 256)
        assert (low, high) == pytest.approx((max(0, centre - half), min(1, centre + half)))
        assert (report.recent.correct, report.recent.n) == (correct, 8)

        # ... and what is drawn says the same.
        accuracy = drawn(stats.query_one("#stats-accuracy"))
        assert f"{correct / 8:.0%}" in accuracy and f"{low:.0%}–{high:.0%}" in accuracy and f"{correct}/8 right" in accuracy
        matrix = drawn(stats.query_one("#stats-guesses"))
        assert "Guesses before your answers" in matrix and "rows: answer · columns: guess" in matrix
        for t, name in enumerate(["class0", "class1", "class2"]):
            line = next(row for row in matrix.splitlines() if row.startswith(name))  # the header row starts blank
            assert [int(x) for x in line.split()[1:4]] == expected[t].tolist()
        assert report.test_confusion is not None and report.test_confusion.sum() == 9
        assert "Test folder, model of round 4" in drawn(stats.query_one("#stats-test"))
        assert report.labels_per_class == np.bincount([a for _, a in shown], minlength=3).tolist()
        assert "When to stop" in drawn(stats.query_one("#stats-stopping"))
        curve = stats.query_one(LearningCurve)
        assert curve.size.height >= 10 and "labels the model had" in drawn(curve)

        await pilot.press("escape")
        assert app.screen is labelling
        await pilot.press("1")  # the keys reach the batch again
        assert app.session.batch.items[0].answer == 0
        await pilot.press("q")


async def _per_class(pilot, app) -> tuple[ClassTable, dict[str, str]]:
    """Open the stats view and wait for its figures: the per-class table and its drawn
    text, the title and each class's row by class name."""
    await pilot.press("S")
    stats = app.screen
    assert isinstance(stats, StatsScreen)
    await until(pilot, lambda: stats.report is not None, what="the figures")
    await pilot.pause()
    table = stats.query_one(ClassTable)
    lines = drawn(table).splitlines()
    rows = {line.split()[0]: line for line in lines if line.startswith("class")}
    return table, {"title": lines[0], **rows}


async def test_stats_view_shows_classes_seen_and_warns_of_a_class_under_five_labels(image_folder):
    app = LabellingApp(image_folder, quick_settings(pipelined=False), confirm_setup=False)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, batch_ready(app, 1), what="batch 1")
        await pilot.press("1", "1", "2", "2")  # class2 never given yet
        _, shown = await _per_class(pilot, app)
        assert "classes seen: 2 of 3" in shown["title"]
        assert "⚠ not seen yet: the model is blind to 'class2'" in shown["class2"]
        assert "—" in shown["class0"]  # round 1 had no model: no guesses to score yet
        await pilot.press("escape", "enter")

        for round_, keys in ((2, "1122"), (3, "1233")):  # class0 and class1 reach 5, class2 stays at 2
            await until(pilot, batch_ready(app, round_), what=f"batch {round_}")
            await pilot.press(*keys, "enter")
        await until(pilot, batch_ready(app, 4), what="batch 4")
        table, shown = await _per_class(pilot, app)
        assert "classes seen: 3 of 3" in shown["title"]
        assert "⚠ 2 labels: the estimate is unreliable, label more of 'class2'" in shown["class2"]
        assert "⚠" not in shown["class0"] and "⚠" not in shown["class1"]
        report = table.report
        assert [f.labels for f in report.per_class] == [5, 5, 2]
        for f in report.per_class:  # the recall drawn is the report's, 82% (70–90%) or —
            assert fmt_recall(f.recall) in shown[f.name]
        assert report.per_class[2].recall.n == 2  # both class2 answers came after a model's guess
        # The warning takes the theme's warning colour, in bold, from stats.tcss.
        segments = [seg for strip in table.render_lines(Region(0, 0, *table.size)) for seg in strip]
        warning = next(seg for seg in segments if "⚠ 2 labels" in seg.text)
        assert warning.style.bold
        theme_warning = Color.parse(app.current_theme.warning).rgb
        assert max(abs(a - b) for a, b in zip(warning.style.color.triplet, theme_warning)) <= 2  # rounding in blending
        await pilot.press("escape")

        await pilot.press("3", "3", "3")  # class2 reaches 5 labels: no warning left
        _, shown = await _per_class(pilot, app)
        assert "classes seen: 3 of 3" in shown["title"] and "⚠" not in shown["class2"]
        assert shown["class2"].split()[1] == "5"
        await pilot.press("escape", "q")


async def test_stats_opens_and_closes_while_training_runs(image_folder):
    settings = quick_settings(pipelined=False, train={"min_steps": 100_000, "max_steps": 100_000})
    app = LabellingApp(image_folder, settings, confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "1", "enter")
        labelling = app.screen
        assert labelling.busy
        await pilot.press("S")
        assert isinstance(app.screen, StatsScreen)
        await until(pilot, lambda: app.screen.report is not None, what="the figures while training")
        assert app.screen.report.labels_per_class == [2, 1, 1]
        await pilot.press("escape")
        assert app.screen is labelling and labelling.busy  # training went on underneath
        await pilot.press("q")


async def test_the_stats_key_is_never_a_class_key(image_folder):
    assert "S" not in CLASS_KEYS and all(k == k.lower() for k in CLASS_KEYS)
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("S")
        assert isinstance(app.screen, StatsScreen)
        assert all(it.answer is None for it in app.session.batch.items)  # S labelled nothing
        await pilot.press("S")  # S closes it too
        assert isinstance(app.screen, LabellingScreen)
        footer = " ".join(f"{key} {ab.binding.description}" for key, ab in app.screen.active_bindings.items() if ab.binding.show)
        assert "S stats" in footer
        await pilot.press("q")


async def _palette(pilot, app, query: str) -> None:
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the command palette")
    await pilot.press(*query)
    await pilot.pause(0.3)  # the palette searches in a worker
    await pilot.press("enter")


async def test_palette_offers_review_stats_export_and_theme(image_folder):
    assert [title for title, _, _ in PALETTE][:3] == ["Review", "Stats", "Export labels"]
    app = LabellingApp(image_folder, quick_settings(budget=40), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles[:3] == ["Review", "Stats", "Export labels"] and "Theme" in titles

        await _palette(pilot, app, "review")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="review from the palette")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LabellingScreen), what="back to labelling")

        await _palette(pilot, app, "stats")
        await until(pilot, lambda: isinstance(app.screen, StatsScreen), what="stats from the palette")
        await pilot.press("escape")

        await pilot.press("1", "2", "s")
        await _palette(pilot, app, "export")
        await until(pilot, lambda: app.exported is not None, what="the export")
        assert app.exported.parent == app.session.project_path / "exports"
        with open(app.exported, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["label"] for r in rows] == ["class0", "class1"]  # the skip is not a label
        assert any(str(app.exported) in str(n.message) for n in app._notifications)

        await _palette(pilot, app, "theme")
        await until(pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", what="the theme picker")
        await pilot.press("escape")
        app.theme = "gruvbox"  # what picking it in the list does
        await pilot.press("q")
    # The theme picked is kept in the config file and used by the next run.
    assert load_config().theme == "gruvbox"
    assert 'theme = "gruvbox"' in locations.config_file().read_text()
    again = LabellingApp(image_folder, config=load_config())
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(again, 1), what="the restored batch")
        assert again.theme == "gruvbox"
        await pilot.press("q")
