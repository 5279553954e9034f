"""The strip that shows retraining and selection between batches, or their failure."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, ProgressBar

STAGE_TEXT = {
    "train": "Retraining the network",
    "evaluate": "Measuring test accuracy",
    "score": "Scoring unlabelled items",
    "select": "Choosing the next batch",
}


class RetrainStatus(Horizontal):
    """Hidden while labelling; a labelled progress bar while the worker runs.

    Hidden, it still holds its row (visibility, not display): showing it then repaints one
    line instead of shrinking the card grid, which refitted and re-rendered every picture
    of the batch twice a round (on photos that doubled the wait between batches)."""

    class Progress(Message):
        """A progress report posted from the worker's thread: posting never waits for the
        UI's thread (``call_from_thread`` does, and held the next batch up while the
        screen repainted the dimmed one)."""

        def __init__(self, stage: str, done: int, total: int) -> None:
            super().__init__()
            self.stage, self.done, self.total = stage, done, total

    def compose(self) -> ComposeResult:
        yield Label("", id="retrain-label")
        yield ProgressBar(id="retrain-bar", show_eta=False)

    def on_mount(self) -> None:
        self.visible = False

    def start(self) -> None:
        self.remove_class("-error")
        self.visible = True
        self.query_one("#retrain-bar").display = True
        self.query_one("#retrain-label", Label).update("Retraining the network…")
        self.query_one("#retrain-bar", ProgressBar).update(total=None, progress=0)

    def stage(self, stage: str, done: int, total: int) -> None:
        """One progress report of the worker (``stage`` is ``train`` or ``score``)."""
        text = STAGE_TEXT.get(stage, stage.capitalize())
        # The label has a fixed size (app.tcss): a report repaints it, up to ten times a
        # second during the wait, without a layout pass of the screen (keys wait for one).
        self.query_one("#retrain-label", Label).update(f"{text}…  {done:,}/{total:,}", layout=False)
        self.query_one("#retrain-bar", ProgressBar).update(total=max(total, 1), progress=done)

    def on_retrain_status_progress(self, report: Progress) -> None:
        self.stage(report.stage, report.done, report.total)

    def failed(self, message: str) -> None:
        """Show a training failure in place of the bar; the screen offers a retry key."""
        self.visible = True
        self.add_class("-error")
        self.query_one("#retrain-bar").display = False
        self.query_one("#retrain-label", Label).update(f"Retraining failed: {message}  —  r retries, q quits")

    def finish(self) -> None:
        self.visible = False
