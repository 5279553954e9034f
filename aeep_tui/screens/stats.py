"""``S``: know when to stop. The model's guesses against the answers, the estimated
accuracy with its interval, the test confusion matrix, per class the labels and the
model's recall (with a warning where a class has too few labels), the learning curve
and the stabilizing-predictions hint (:mod:`aeep_core.session.stats`).

The figures are read from the store in a thread worker, so the screen opens at once
and every key keeps answering while they load; training goes on underneath.
"""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState

from aeep_core.session.stats import AccuracyEstimate, StatsReport
from aeep_tui.widgets.class_table import ClassTable
from aeep_tui.widgets.confusion import confusion_table
from aeep_tui.widgets.footer import QuietFooter
from aeep_tui.widgets.learning_curve import LearningCurve

STATS_GROUP = "stats"


def fmt_estimate(e: AccuracyEstimate, what: str) -> str:
    if e.accuracy is None:
        return f"{what}: — (no guessed answers yet)"
    rounds = f"round {e.rounds[0]}" if len(e.rounds) == 1 else f"rounds {e.rounds[0]}–{e.rounds[-1]}"
    return f"{what}: [b]{e.accuracy:.0%}[/b]  (95% interval {e.low:.0%}–{e.high:.0%}; {e.correct}/{e.n} right, {rounds})"


def stopping_text(report: StatsReport) -> Text:
    hint = report.hint
    style = "bold green" if hint.stop else "yellow" if hint.mean_kappa is not None else "dim"
    text = Text.assemble(("When to stop  ", "bold"), (hint.message, style))
    recent = ", ".join(f"r{r} {k:.3f}" for r, k in report.kappas[-5:]) or "none yet"
    text.append(
        f"\nCohen's kappa of the predictions on {report.stop_set_size:,} fixed items between consecutive rounds: {recent}."
        f"\nRule: mean of the last {hint.window} ≥ {hint.threshold} (Bloodgood & Vijay-Shanker 2009; small-text KappaAverage).",
        style="dim",
    )
    return text


class StatsScreen(Screen[None]):
    """Opened from the labelling screen with ``S``; ``escape`` (or ``S``) goes back."""

    BINDINGS = [
        Binding("escape", "close", "back"),
        Binding("S", "close", "back", show=False),
        Binding("q", "app.save_and_quit", "quit"),
    ]

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.report: StatsReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="stats-body"):
            yield Static("Reading the figures…", id="stats-accuracy")
            with Horizontal(id="stats-matrices"):
                yield Static(id="stats-guesses")
                yield Static(id="stats-test")
            yield ClassTable(id="stats-classes")
            yield LearningCurve(id="stats-curve")
            yield Static(id="stats-stopping")
        yield QuietFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one("#stats-body").border_title = "Stats · know when to stop"
        self.run_worker(self.session.report, thread=True, group=STATS_GROUP, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != STATS_GROUP:
            return
        if event.state == WorkerState.SUCCESS:
            self.show(cast(StatsReport, event.worker.result))
        elif event.state == WorkerState.ERROR:
            self.query_one("#stats-accuracy", Static).update(f"[red]Cannot read the figures: {event.worker.error}[/red]")

    def show(self, report: StatsReport) -> None:
        """Fill every part from one report."""
        self.report = report
        accuracy = [fmt_estimate(report.recent, "Estimated accuracy on the strategy's picks, latest rounds")]
        if report.estimate.n != report.recent.n:  # older rounds too: the whole run, for comparison
            accuracy.append(fmt_estimate(report.estimate, "All rounds"))
        if report.test_accuracy is not None:
            accuracy.append(f"Test folder: [b]{report.test_accuracy:.0%}[/b] (model of round {report.test_round})")
        self.query_one("#stats-accuracy", Static).update("\n".join(accuracy))
        guesses = confusion_table(report.guess_confusion, report.classes, "Guesses before your answers")
        self.query_one("#stats-guesses", Static).update(guesses)
        test = self.query_one("#stats-test", Static)
        test.display = report.test_confusion is not None
        if report.test_confusion is not None:
            title = f"Test folder, model of round {report.test_round}"
            test.update(confusion_table(report.test_confusion, report.classes, title, rows="true class"))
        self.query_one(ClassTable).show(report)
        self.query_one(LearningCurve).show(report.curve)
        self.query_one("#stats-stopping", Static).update(stopping_text(report))

    def action_close(self) -> None:
        self.app.pop_screen()
