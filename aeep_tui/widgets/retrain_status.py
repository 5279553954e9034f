"""The strip that shows retraining and selection between batches, or their failure."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widget import Widget

STAGE_TEXT = {
    "train": "Retraining the network",
    "evaluate": "Measuring test accuracy",
    "score": "Scoring unlabelled items",
    "select": "Choosing the next batch",
}
LABEL_WIDTH = 42  # the bar starts at the same column whatever the stage says


class RetrainStatus(Widget):
    """Blank while labelling; a stage and a progress bar once the screen shows the wait
    (:meth:`start`; the worker's reports before then are kept, and the newest is shown).

    One line drawn by :meth:`render`, always holding its row: showing, hiding and moving
    it only repaints that line. Toggling a child's ``visible`` or ``display``, or a Label
    that grows with its text, asks for a layout pass of the whole screen instead: two of
    them at every Enter, about 90 ms each natively, on the path from Enter to the next
    batch (and a row that came and went would refit every picture of the grid)."""

    COMPONENT_CLASSES = {"retrain-status--bar", "retrain-status--track"}

    class Progress(Message):
        """A progress report posted from the worker's thread: posting never waits for the
        UI's thread (``call_from_thread`` does, and held the next batch up while the
        screen repainted the dimmed one)."""

        def __init__(self, stage: str, done: int, total: int) -> None:
            super().__init__()
            self.stage, self.done, self.total = stage, done, total

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""  # what the strip says (empty: hidden)
        self._progress: tuple[int, int] | None = None  # (done, total); None: no bar
        self._started = False
        self._latest: tuple[str, int, int] | None = None  # the newest report, shown or not

    @property
    def showing(self) -> bool:
        return bool(self.text)

    def start(self) -> None:
        self.remove_class("-error")
        self._started = True
        if self._latest is None:
            self._show("Retraining the network…", None)
        else:
            self.stage(*self._latest)

    def stage(self, stage: str, done: int, total: int) -> None:
        """One progress report of the worker (``stage`` is ``train`` or ``score``)."""
        self._latest = (stage, done, total)
        if self._started:
            text = STAGE_TEXT.get(stage, stage.capitalize())
            self._show(f"{text}…  {done:,}/{total:,}", (done, max(total, 1)))

    def on_retrain_status_progress(self, report: Progress) -> None:
        self.stage(report.stage, report.done, report.total)

    def failed(self, message: str) -> None:
        """Show a training failure in place of the bar; the screen offers a retry key."""
        self._started, self._latest = False, None
        self.add_class("-error")
        self._show(f"Retraining failed: {message}  —  r retries, q quits", None)

    def finish(self) -> None:
        self._started, self._latest = False, None
        self._show("", None)

    def _show(self, text: str, progress: tuple[int, int] | None) -> None:
        if (text, progress) != (self.text, self._progress):
            self.text, self._progress = text, progress
            self.refresh()

    def render(self) -> Text:
        if self._progress is None:
            return Text(self.text, no_wrap=True, overflow="ellipsis")
        done, total = self._progress
        label = self.text[:LABEL_WIDTH].ljust(LABEL_WIDTH + 2)
        width = max(0, self.content_size.width - len(label))
        filled = min(width, round(width * done / total))
        return Text.assemble(
            label,
            ("━" * filled, self.get_component_rich_style("retrain-status--bar")),
            ("━" * (width - filled), self.get_component_rich_style("retrain-status--track")),
            no_wrap=True,
        )
