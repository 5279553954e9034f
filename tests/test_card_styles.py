"""A card's state classes style its frame alone, so a key restyles the card, not its insides.

``ItemCard.restyle_frame`` applies the stylesheet to the card and skips its body, picture
and guess line: correct only while no rule selects what is inside a card by the card's
state. These tests fail if a rule starts to, or if a key leaves any card styled otherwise
than a full pass of Textual's would.
"""

from __future__ import annotations

from textual.css.model import CombinatorType, SelectorType

from aeep_tui.app import LabellingApp
from aeep_tui.widgets.item_card import ItemCard
from tests.test_app import batch_ready, labelling_screen, quick_settings, until

STATE_CLASSES = {"-cursor", "-labelled", "-skipped", "-done"}


def _render_rules(card: ItemCard) -> list[dict]:
    return [node.styles.get_render_rules() for node in card.walk_children(with_self=True)]


async def test_no_rule_styles_what_is_inside_a_card_by_the_cards_state(image_folder):
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        state_rules = 0
        for rule in app.stylesheet.rules:
            for selector_set in rule.selector_set:
                selectors = selector_set.selectors
                # the compound matched against the node itself: the last selector and
                # those joined to it with no combinator
                first_of_last = len(selectors) - 1
                while first_of_last > 0 and selectors[first_of_last].combinator == CombinatorType.SAME:
                    first_of_last -= 1
                ancestors = selectors[:first_of_last]
                own = selectors[first_of_last:]
                assert not any(s.type == SelectorType.CLASS and s.name in STATE_CLASSES for s in ancestors), selector_set.css
                state_rules += any(s.type == SelectorType.CLASS and s.name in STATE_CLASSES for s in own)
        assert state_rules >= 3  # the check did see the card rules (app.tcss)


async def test_after_label_skip_undo_and_moves_every_card_is_styled_as_a_full_pass_would(image_folder):
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = labelling_screen(app)
        for key in ("1", "s", "right", "backspace", "s", "left"):
            await pilot.press(key)
        assert screen.cards[0].has_class("-labelled") and screen.cards[1].has_class("-skipped")
        kept = [_render_rules(card) for card in screen.cards]
        for card in screen.cards:
            app.update_styles(card, animate=False)  # Textual's own pass: the card and everything inside
        assert [_render_rules(card) for card in screen.cards] == kept
        assert kept[0][0] != kept[2][0]  # a labelled card's frame differs from an open one's


async def test_a_batch_dimmed_and_then_shown_in_the_same_cards_is_styled_as_a_full_pass_would(image_folder):
    """Dimming the answered batch (``-done``) and showing the next one in the cards on
    screen restyle each card's frame alone; what is inside ends up as Textual's full pass
    leaves it."""
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = labelling_screen(app)
        first_cards = list(screen.cards)
        screen.busy = True  # as while the next batch is prepared: the dimming acts only then
        screen._show_wait()
        screen.busy = False
        assert all(card.has_class("-done") for card in screen.cards)
        dimmed = [_render_rules(card) for card in screen.cards]
        for card in screen.cards:
            app.update_styles(card, animate=False)
        assert [_render_rules(card) for card in screen.cards] == dimmed
        assert dimmed[0][0]["opacity"] != 1.0

        await pilot.press("1", "2", "3", "1", "enter")
        await until(pilot, batch_ready(app, 2), what="the second batch")
        assert screen.cards == first_cards  # shown in the same cards
        assert not any(card.has_class("-done") or card.has_class("-labelled") for card in screen.cards)
        shown = [_render_rules(card) for card in screen.cards]
        for card in screen.cards:
            app.update_styles(card, animate=False)
        assert [_render_rules(card) for card in screen.cards] == shown
        await pilot.press("q")


def _counting(render, name: str, drawn: list[str]):
    def counted():
        drawn.append(name)
        return render()

    return counted


async def test_a_class_key_repaints_the_two_frames_and_nothing_inside_them(image_folder):
    """A key changes the answered card's frame and the next card's: their guess lines and
    bodies keep the lines they drew (a rule colouring a border title would refresh them)."""
    from tests.test_app import subtitle, title

    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.pause()
        screen = labelling_screen(app)
        drawn: list[str] = []
        for card in screen.cards[:2]:
            for inside in card.walk_children():
                inside.render = _counting(inside.render, type(inside).__name__, drawn)  # called to draw its lines anew
        await pilot.press("1")
        await pilot.pause()
        assert subtitle(screen.cards[0]) == "1 ▸ class0" and screen.cards[1].has_class("-cursor")
        assert "[bold]" in screen.cards[1].border_title and "[bold]" not in screen.cards[0].border_title
        assert title(screen.cards[1]) == screen.cards[1].item.name
        assert drawn == []
