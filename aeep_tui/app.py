"""The labelling app: composes setup → opening → labelling screens around one session.

A folder opened for the first time goes through :class:`SetupScreen`; a folder with a
project resumes silently. Opening (which may decode thousands of images) runs in a
thread worker behind :class:`OpeningScreen`; a data or store error ends the app with a
one-line message that the CLI prints.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import cast

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

# textual-image asks the terminal for its cell size and graphics support when imported,
# and terminal_image for its version (an old kitty): that must happen before Textual
# takes over the terminal (App.run), which importing it with the app guarantees.
import aeep_tui.widgets.terminal_image  # noqa: F401  (import for its side effect)
from aeep_core.session import LabellingSession, ProjectSettings
from aeep_tui.gc_schedule import defer_full_collections, restore_full_collections
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.screens.opening import OpeningScreen
from aeep_tui.screens.setup import SetupChoice, SetupScreen, classes_from_folder

OPEN_GROUP = "open"


class LabellingApp(App[None]):
    """Label ``data`` batch by batch; ``settings`` proposes a new project's settings."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "aeep-tui"
    ENABLE_COMMAND_PALETTE = False  # every action has its key; the palette only adds noise
    BINDINGS = [Binding("ctrl+c", "save_and_quit", "quit", show=False, priority=True)]

    def __init__(
        self,
        data: Path,
        settings: ProjectSettings | None = None,
        *,
        confirm_setup: bool = True,
        project_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.data = Path(data)
        self.proposed = settings
        self.confirm_setup = confirm_setup
        self.project_dir = project_dir
        self.session: LabellingSession | None = None
        self.error_message: str | None = None
        self.opened_project: Path | None = None
        self.resuming = False
        self._gc_thresholds: tuple[int, int, int] | None = None
        self.sub_title = str(self.data)

    def on_mount(self) -> None:
        self.resuming = LabellingSession.find(self.data, self.project_dir) is not None
        if self.resuming:
            self.open_session(None)  # resume silently with the stored settings
        elif self.proposed is not None and not self.confirm_setup:
            self.open_session(self.proposed)
        else:
            self.push_screen(self._setup_screen(), self._setup_done)

    def _setup_screen(self) -> SetupScreen:
        from aeep_core.strategies import STRATEGIES

        proposed = self.proposed or ProjectSettings(classes=[], keys=[])
        classes = proposed.classes or classes_from_folder(self.data)
        return SetupScreen(self.data, classes, proposed.batch_size, proposed.strategy, sorted(STRATEGIES, key=_aeep_first))

    def _setup_done(self, choice: SetupChoice | None) -> None:
        if choice is None:
            return
        base = self.proposed or ProjectSettings(classes=[], keys=[])
        self.open_session(
            replace(base, classes=choice.classes, keys=choice.keys, batch_size=choice.batch_size, strategy=choice.strategy)
        )

    # --- opening ----------------------------------------------------------------
    def open_session(self, settings: ProjectSettings | None) -> None:
        screen = OpeningScreen(self.data)
        if self.screen_stack and isinstance(self.screen, SetupScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

        def progress(stage: str, done: int, total: int) -> None:
            self.call_from_thread(screen.stage, stage, done, total)

        def open_in_thread() -> LabellingSession:
            return LabellingSession.open(self.data, settings, project_dir=self.project_dir, progress=progress)

        self.run_worker(open_in_thread, thread=True, group=OPEN_GROUP, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != OPEN_GROUP:
            return
        if event.state == WorkerState.SUCCESS:
            session = cast(LabellingSession, event.worker.result)
            self.session, self.opened_project = session, session.project_path
            self._gc_thresholds = defer_full_collections()
            self.switch_screen(LabellingScreen(session))
            if self.resuming:  # a one-line reminder, not a question: the stored settings apply
                stats = session.stats
                self.notify(f"Resumed at round {stats.round}: {stats.labelled:,} labelled so far.", timeout=4)
        elif event.state == WorkerState.ERROR:
            self.error_message = str(event.worker.error)
            self.exit(return_code=2)

    # --- leaving ----------------------------------------------------------------
    async def action_save_and_quit(self) -> None:
        """Stop a running retrain at its next check, release the project, exit.

        Every answer is already on disk (the session persists each one), so "save" is
        only the clean close that releases the writer lock.
        """
        for screen in self.screen_stack:
            if isinstance(screen, LabellingScreen):
                if screen.busy:
                    self.notify("Stopping the retrain…", timeout=2)
                await screen.stop_retraining()
        self.close_session()
        self.exit()

    def close_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        if self._gc_thresholds is not None:
            restore_full_collections(self._gc_thresholds)
            self._gc_thresholds = None

    async def action_quit(self) -> None:
        await self.action_save_and_quit()


def training_threads() -> int:
    """Torch threads for training beside the app: every core but one, which the UI keeps
    (training runs during labelling when pipelined, during the wait when not)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _aeep_first(name: str) -> tuple[bool, str]:
    return name != "aeep", name
