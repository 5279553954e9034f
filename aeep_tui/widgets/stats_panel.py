"""The side panel: where the labelling stands and what the active learner is doing.

Every value comes from one :class:`SessionStats`; ``update_stats`` is the only entry
point, so the panel can never show numbers from two different moments.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, ProgressBar, Sparkline, Static


def fmt_number(value: float | int | None, digits: int = 2) -> str:
    """``—`` for a value that does not apply yet, else a short number."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def fmt_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def fmt_seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def fmt_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3.5 h``: a time left, as precise as it can be."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def known(history: list) -> list[float]:
    """The values of a per-round history that apply (rounds without one are left out)."""
    return [float(v) for v in history if v is not None]


class StatsPanel(VerticalScroll, can_focus=False):
    """Round, progress against the budget, AEEP's m and mp, entropy, accuracy, timing.

    Not focusable: a focused panel would take the arrow keys meant for the cards."""

    def compose(self) -> ComposeResult:
        # Static (not Label) where text may wrap in the 36-column panel.
        yield Static(id="stat-round", classes="stat-heading")
        yield Static(id="stat-labelled")
        yield Static(id="stat-embedded", classes="stat-dim")
        yield Label("Budget", id="stat-budget-label", classes="stat-label")
        yield ProgressBar(id="stat-budget", show_eta=False, show_percentage=False)
        yield Static(id="stat-budget-none", classes="stat-dim")
        yield Label("Exploration picks m", classes="stat-label")
        yield Static(id="stat-m")
        yield Sparkline([], id="spark-m")
        yield Label("Matching prob. mp", classes="stat-label")
        yield Static(id="stat-mp")
        yield Sparkline([], id="spark-mp")
        yield Label("Mean entropy (nats)", classes="stat-label")
        yield Static(id="stat-entropy")
        yield Label("Accuracy", classes="stat-label")
        yield Static(id="stat-accuracy")
        yield Sparkline([], id="spark-accuracy")
        yield Label("Model", classes="stat-label")
        yield Static(id="stat-model")

    def on_mount(self) -> None:
        self.border_title = "Active learning"
        self._shown: dict[str, str] = {}
        self._budget_drawn: tuple[int, int, int] | None = None  # (total, width, half cells) on screen
        # Background embedding moves without a key being pressed: its line follows it.
        self.set_interval(1.0, self._follow_embedding)

    def _follow_embedding(self) -> None:
        session = getattr(self.screen, "session", None)
        progress = None if session is None else session.embedding_progress()
        if progress is not None or self._shown.get("#stat-embedded"):
            self._show_embedding(progress)

    def update_stats(self, stats) -> None:
        """Show ``stats`` (a :class:`aeep_core.session.SessionStats`)."""
        self._show("#stat-round", f"Round {stats.round}")
        skipped = f" · {stats.skipped} skipped" if stats.skipped else ""
        self._show("#stat-labelled", f"Labelled [b]{stats.labelled:,}[/b] / {stats.pool_size:,}{skipped}")
        self._show_embedding(stats.embedding)
        self._show_budget(stats.labelled, stats.budget)
        self._show("#stat-m", f"m now [b]{fmt_number(stats.m)}[/b]")
        self._show("#stat-mp", f"mp now [b]{fmt_number(stats.mp)}[/b]")
        self._plot("#spark-m", known(stats.m_history))
        self._plot("#spark-mp", known(stats.mp_history))
        self._show(
            "#stat-entropy", f"batch [b]{fmt_number(stats.entropy_batch)}[/b] · pool [b]{fmt_number(stats.entropy_pool)}[/b]"
        )
        self._show(
            "#stat-accuracy",
            f"last batch [b]{fmt_percent(stats.batch_accuracy)}[/b] · test [b]{fmt_percent(stats.test_accuracy)}[/b]",
        )
        self._plot("#spark-accuracy", known(stats.accuracy_history))
        restarted = (
            f"\n[b]trainer restarted {stats.trainer_restarts}×[/b]: {stats.trainer_failure}" if stats.trainer_restarts else ""
        )
        pace = (
            f"\nyou [b]{fmt_seconds(stats.seconds_per_answer)}[/b]/answer · choosing [b]{fmt_seconds(stats.seconds_to_choose)}[/b]"
            f" · {stats.lookahead} ahead"
            if stats.lookahead is not None and stats.seconds_per_answer is not None
            else ""
        )
        self._show(
            "#stat-model",
            f"device [b]{stats.device}[/b] · {stats.model}\nretrain [b]{fmt_seconds(stats.train_s)}[/b] · select {fmt_seconds(stats.select_s)}"
            + pace
            + restarted,
        )

    # The panel is refreshed after every answer, when only a count changes. A repeated
    # text is skipped, and a line is repainted in place unless its new text wraps to
    # another number of lines: a Static fills the panel's fixed width, so only its height
    # can move anything else. A layout pass of the screen, as a count gaining a digit
    # (9 -> 10 labels) used to ask for, took that key's paint from 7 to 59 ms on the
    # emulated slow kind (BENCHMARKS.md, issue 27).
    def _show(self, selector: str, text: str) -> None:
        before = self._shown.get(selector)
        if before == text:
            return
        self._shown[selector] = text
        line = self.query_one(selector, Static)
        line.update(text, layout=False)
        width, height = line.content_size
        if before is None or not width or line.get_content_height(line.size, self.app.size, width) != height:
            line.refresh(layout=True)

    def _plot(self, selector: str, values: list[float]) -> None:
        sparkline = self.query_one(selector, Sparkline)
        if list(sparkline.data or []) != values:
            sparkline.data = values

    def _show_embedding(self, progress) -> None:
        """A photo folder still being embedded: how far, how fast, how long still."""
        embedded = self.query_one("#stat-embedded", Static)
        if embedded.display != (progress is not None):
            embedded.display = progress is not None
        if progress is None:
            self._shown.pop("#stat-embedded", None)
            return
        if progress.failure:
            text = f"embedded {progress.embedded:,} of {progress.total:,}: {progress.failure}"
        else:
            rate = "" if progress.per_second is None else f" · {progress.per_second:.0f}/s"
            left = "" if progress.seconds_left is None else f" · {fmt_duration(progress.seconds_left)} left"
            text = f"embedded {progress.embedded:,} of {progress.total:,}{rate}{left}"
        self._show("#stat-embedded", text)

    def _show_budget(self, labelled: int, budget: int | None) -> None:
        bar = self.query_one("#stat-budget", ProgressBar)
        bar.display = budget is not None
        self.query_one("#stat-budget-none", Static).display = budget is None
        if budget is None:
            self._show("#stat-budget-label", "Budget")
            self._show("#stat-budget-none", "none set (--budget N)")
        else:
            self._show("#stat-budget-label", f"Budget {min(labelled, budget):,} / {budget:,}")
            total, done = max(budget, 1), min(labelled, budget)
            # The bar draws in half cells and re-renders on every update (1 ms of a key's
            # paint on the fast machine): an answer that moves no half cell, most of them
            # on a budget of hundreds, leaves it as it is. Unlaid out (width 0), always.
            width = bar.content_size.width
            drawn = (total, width, int(2 * width * done / total))
            if not width or drawn != self._budget_drawn:
                self._budget_drawn = drawn
                bar.update(total=total, progress=done)
