"""Classes met while labelling, in the real app (issue 26): add one mid-batch with A (its key
from the config's key map), label two items with it, confirm; the next round trains with
one more output and every old weight unchanged but the new row; exports carry it; it
survives reopening. Rename and merge through the command palette, the history kept."""

from __future__ import annotations

import torch

from aeep_core.session.portable import export_project_model
from aeep_core.store import Store
from aeep_core.store.checkpoints import read_checkpoint
from aeep_core.store.export import export_rows
from aeep_tui.app import LabellingApp
from aeep_tui.config import Config
from aeep_tui.screens.classes import ClassNameScreen, PickClassScreen
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.screens.review import ReviewScreen
from tests.conftest import make_image_folder
from tests.test_app import SIZE, batch_ready, quick_settings, subtitle, until
from tests.test_stats_app import _palette


def footer_keys(app) -> str:
    return " ".join(f"{key}:{ab.binding.action}" for key, ab in app.screen.active_bindings.items())


def newest_weights(project):
    store = Store.open(project, read_only=True)
    try:
        row = store.last_checkpoint()
    finally:
        store.close()
    return read_checkpoint(project, row["file"], row["sha256"])["model"]


async def test_add_a_class_mid_batch_train_with_one_more_output_export_it_and_reopen(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=6, n_classes=4)
    project = tmp_path / "p"
    # lr 0: training leaves every weight as it was, so the round's checkpoint shows the growth alone
    settings = quick_settings(train={"min_steps": 3, "max_steps": 3, "lr": 0.0})
    app = LabellingApp(data, settings, confirm_setup=False, project_dir=project, config=Config(keys={"fox": "f"}))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "1", "enter")
        await until(pilot, batch_ready(app, 2), what="the second batch")
        before = newest_weights(project)  # three outputs: the model that chose this batch
        assert before["head.weight"].shape[0] == 3

        await pilot.press("1")  # the first card, then a class nobody listed
        assert "A:app.new_class" in footer_keys(app)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, ClassNameScreen), what="the name dialog")
        await pilot.press("f", "o", "x", "enter")
        await until(pilot, lambda: isinstance(app.screen, LabellingScreen), what="back to the batch")
        fox = app.session.classes.current[3]
        assert (fox.name, fox.key) == ("fox", "f")  # the config's key map gave it f
        assert "f:label(3)" in footer_keys(app)
        await pilot.press("f", "f", "2")  # two items of the new class, on this very batch
        screen = app.screen
        assert [it.answer for it in app.session.batch.items] == [0, 3, 3, 1]
        assert subtitle(screen.cards[1]) == "f ▸ fox"
        await pilot.press("enter")
        await until(pilot, batch_ready(app, 3), what="the batch after training with fox")
        after = newest_weights(project)
        assert after["head.weight"].shape[0] == after["head.bias"].shape[0] == 4  # one more output
        for name, old in before.items():
            new = after[name]
            assert torch.equal(new[: len(old)] if name.startswith("head.") else new, old), name  # old weights kept
        assert after["head.weight"][3].abs().sum() > 0  # the new row, initialised like a fresh layer's

        rows = [r for r in export_rows(project) if r["label"] == "fox"]
        assert len(rows) == 2
        meta = export_project_model(project, tmp_path / "model.pt")
        assert meta["classes"] == ["class0", "class1", "class2", "fox"]
        module = torch.jit.load(str(tmp_path / "model.pt"))
        assert module(app.session.pool.inputs[:2]).shape == (2, 4)
        await pilot.press("q")

    again = LabellingApp(data, project_dir=project, config=Config())
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(again, 3), what="the reopened batch")
        assert again.session.classes.current.names == ["class0", "class1", "class2", "fox"]
        assert "f:label(3)" in footer_keys(again)
        await pilot.press("f")
        assert again.session.batch.items[0].answer == 3
        await pilot.press("q")


async def test_rename_and_merge_through_the_palette_keep_every_answer_and_its_history(tmp_path):
    data = make_image_folder(tmp_path / "images", per_class=6)
    app = LabellingApp(data, quick_settings(), confirm_setup=False, project_dir=tmp_path / "p")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "2", "enter")
        await until(pilot, batch_ready(app, 2), what="the second batch")
        await pilot.press("2")
        first_two = [it.item_id for it in app.session.review.items() if it.answer == 1]
        assert len(first_two) == 2

        await _palette(pilot, app, "rename")
        await until(pilot, lambda: isinstance(app.screen, PickClassScreen), what="the class picker")
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, ClassNameScreen), what="the name dialog")
        await pilot.press("backspace", "backspace", "backspace", "backspace", "backspace", "backspace", "s", "q", "enter")
        await until(pilot, lambda: isinstance(app.screen, LabellingScreen), what="back to the batch")
        assert app.session.classes.current.names == ["class0", "class1", "sq"]
        assert app.session.learner.labels[next(it.item_id for it in app.session.review.items() if it.answer == 2)] == 2

        await _palette(pilot, app, "merge")
        await until(pilot, lambda: isinstance(app.screen, PickClassScreen), what="the class to merge away")
        await pilot.press("2")
        await until(pilot, lambda: "into" in str(app.screen.prompt), what="the class to merge into")
        await pilot.press("2")  # not offered: class1 cannot be merged into itself
        assert isinstance(app.screen, PickClassScreen)
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, LabellingScreen), what="back to the batch")
        assert "2:label(1)" not in footer_keys(app) and "1:label(0)" in footer_keys(app)  # its key is free
        assert app.session.batch.items[0].answer == 0 and subtitle(app.screen.cards[0]) == "1 ▸ class0"
        for item in first_two:
            assert app.session.learner.labels[item] == 0
            assert [h.label for h in app.session.review.history(item)] == [1, 0]  # the old answer stays
        assert any("3 label(s) moved" in str(n.message) for n in app._notifications)
        assert app.session.report().classes == ["class0", "sq"]  # the stats view's classes

        await pilot.press("R")  # the review screen keys the classes as they are now
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="the review screen")
        assert "1:relabel(0)" in footer_keys(app) and "3:relabel(2)" in footer_keys(app)
        assert "2:relabel(1)" not in footer_keys(app)
        await pilot.press("escape")
        await pilot.press("q")
    assert {r["label"] for r in export_rows(tmp_path / "p")} == {"class0", "sq"}
