"""The labelling screen's compositor sends the terminal what Textual's own would, rendering less."""

from __future__ import annotations

from textual._compositor import Compositor
from textual.geometry import Region

from aeep_tui.app import LabellingApp
from aeep_tui.partial_repaint import ChangedRegionsCompositor, row_bands
from aeep_tui.widgets.stats_panel import StatsPanel
from tests.test_app import batch_ready, labelling_screen, quick_settings, until


def test_row_bands_merge_overlapping_and_touching_rows():
    regions = [Region(0, 10, 5, 3), Region(40, 0, 2, 1), Region(3, 12, 9, 4), Region(7, 16, 1, 1), Region(0, 30, 1, 2)]
    assert row_bands(regions) == [(0, 1), (10, 17), (30, 32)]
    assert row_bands([]) == []


async def test_a_key_repaints_the_same_cells_from_fewer_widgets(image_folder):
    app = LabellingApp(image_folder, quick_settings(batch_size=8), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = labelling_screen(app)
        compositor = screen._compositor
        assert isinstance(compositor, ChangedRegionsCompositor)
        await pilot.press("1")  # the first card answered, the cursor on the second
        # What a key changes, far apart on screen: the title (top left), two cards in
        # different rows, the side panel's count and budget bar (right).
        panel = screen.query_one(StatsPanel)
        changed = [
            screen.query_one("#batch-title"),
            screen.cards[0],
            screen.cards[5],
            panel.query_one("#stat-labelled"),
            panel.query_one("#stat-budget"),
        ]
        for widget in changed:
            widget.refresh()
        compositor.update_widgets(set(changed))
        regions = set(compositor._dirty_regions)
        assert len(regions) >= 4

        compositor._changed = list(regions)
        rendered = list(compositor._get_renders())
        compositor._changed = None
        everything = list(Compositor._get_renders(compositor, Region.from_union(list(regions))))
        ours = compositor.render_partial_update()
        compositor._dirty_regions.update(regions)
        stock = Compositor.render_partial_update(compositor)

        assert ours is not None and stock is not None
        assert ours.render_segments(app.console) == stock.render_segments(app.console)
        lines = sum(len(strips) for _, _, strips in rendered)
        assert lines < sum(len(strips) for _, _, strips in everything) / 2


async def test_a_count_gaining_a_digit_repaints_its_line_without_a_layout_pass(image_folder):
    """9 -> 10 labels makes the panel's line longer, not taller: no layout of the screen
    (which re-renders every card). A text that wraps to a second line still gets one."""
    app = LabellingApp(image_folder, quick_settings(batch_size=8), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        panel = labelling_screen(app).query_one(StatsPanel)
        layouts: list[bool] = []
        for selector, template in (("#stat-labelled", "Labelled [b]{}[/b] / 60"), ("#stat-budget-label", "Budget {} / 60")):
            line = panel.query_one(selector)
            real_refresh = line.refresh

            def refresh(*regions, layout: bool = False, real_refresh=real_refresh, **kwargs):
                layouts.append(layout)
                return real_refresh(*regions, layout=layout, **kwargs)

            line.refresh = refresh
            panel._show(selector, template.format(9))
            panel._show(selector, template.format(10))
            await pilot.pause()
            assert layouts and not any(layouts) and line.size.height == 1, selector
            assert "10" in str(line.render())  # repainted in place, not clipped
        line = panel.query_one("#stat-labelled")
        panel._show("#stat-labelled", "Labelled [b]10[/b] / 60 · " + "many skipped " * 4)
        await pilot.pause()
        assert layouts[-1] and line.size.height > 1


async def test_the_budget_bar_is_updated_only_when_an_answer_moves_a_half_cell(image_folder):
    """Each update re-renders the bar; on a budget of hundreds most answers move nothing."""
    app = LabellingApp(image_folder, quick_settings(batch_size=8), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        panel = labelling_screen(app).query_one(StatsPanel)
        bar = panel.query_one("#stat-budget")
        panel._show_budget(0, 300)  # shown (the test project may have no budget), then laid out
        await pilot.pause()
        width = bar.content_size.width
        assert width > 0
        updates = 0
        real_update = bar.update

        def update(**kwargs):
            nonlocal updates
            updates += "total" in kwargs  # the panel's calls (the bar calls update(progress=) itself)
            return real_update(**kwargs)

        bar.update = update
        for labelled in range(301):
            panel._show_budget(labelled, 300)
            # what the bar draws (half cells) is what the true count would draw
            assert int(2 * width * bar.progress / bar.total) == int(2 * width * labelled / 300), labelled
        assert bar.progress == bar.total == 300
        assert updates <= 2 * width + 1 < 300
