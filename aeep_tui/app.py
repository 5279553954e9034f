"""The labelling app: composes setup → opening → labelling screens around one session.

A folder opened for the first time goes through :class:`SetupScreen`; a folder with a
project resumes silently. Opening (which may decode thousands of images) runs in a
thread worker behind :class:`OpeningScreen`; a data or store error ends the app with a
one-line message that the CLI prints.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

# textual-image asks the terminal for its cell size and graphics support when imported,
# and terminal_image for its version (an old kitty): that must happen before Textual
# takes over the terminal (App.run), which importing it with the app guarantees.
import aeep_tui.widgets.terminal_image  # noqa: F401  (import for its side effect)
from aeep_core import locations
from aeep_core.learning.training import foreground, torch_threads
from aeep_core.processes import warm_up
from aeep_core.session import LabellingSession, ProjectSettings, StoreError
from aeep_tui.config import Config, ConfigError, key_map_for, save_setting
from aeep_tui.gc_schedule import defer_full_collections, restore_full_collections
from aeep_tui.keys import key_for_new_class
from aeep_tui.screens.classes import ClassNameScreen, PickClassScreen
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.screens.opening import OpeningScreen
from aeep_tui.screens.setup import SetupChoice, SetupScreen, classes_from_folder
from aeep_tui.screens.stats import StatsScreen

T = TypeVar("T")
OPEN_GROUP = "open"
# longest a keystroke pauses training: a frame or two at 60 fps, well past the handling
# of a key (~25 ms), short enough that typing fast still leaves the trainer most of the time
INPUT_HOLD_S = 0.1

#: The command palette (ctrl+p): (title, help, app action). One line per command; Textual's
#: own commands (Theme, Keys, Quit, ...) follow them.
PALETTE: list[tuple[str, str, str]] = [
    ("Review", "Browse confirmed answers, likely mistakes first, and correct them (R on the labelling screen)", "review"),
    ("Stats", "Labels and recall per class, the model's accuracy and when to stop (S on the labelling screen)", "stats"),
    ("Export labels", "Write the labels as CSV into the project folder (aeep-tui export for other formats)", "export_labels"),
    ("Add class", "A class nobody listed: give it a name; it gets a key at once (A on the labelling screen)", "new_class"),
    ("Rename class", "Give a class a new name; every label on it stays", "rename_class"),
    ("Merge classes", "Move every label of one class to another; the class goes, the history keeps its answers", "merge_classes"),
]


class LabellingApp(App[None]):
    """Label ``data`` batch by batch; ``settings`` proposes a new project's settings."""

    CSS_PATH = ["styles/app.tcss", "styles/stats.tcss", "styles/classes.tcss"]
    TITLE = "aeep-tui"
    # ctrl+p opens it: no class key is a ctrl key and no screen binds ctrl+p.
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [Binding("ctrl+c", "save_and_quit", "quit", show=False, priority=True)]

    def __init__(
        self,
        data: Path,
        settings: ProjectSettings | None = None,
        *,
        confirm_setup: bool = True,
        project_dir: Path | None = None,
        config: Config | None = None,
        review: bool = False,
        separate_process: bool = True,
    ) -> None:
        super().__init__()
        # Training in a child process (aeep_core.processes): this one renders and takes keys.
        self.separate_process = separate_process
        self.config = config or Config()
        self.data = Path(data)
        self.start_in_review = review  # `aeep-tui review`: the review screen over the labelling one
        self.proposed = settings
        self.confirm_setup = confirm_setup
        self.project_dir = project_dir
        self.session: LabellingSession | None = None
        self.error_message: str | None = None
        self.opened_project: Path | None = None
        self.resuming = False
        self._gc_thresholds: tuple[int, int, int] | None = None
        self.exported: Path | None = None  # the last export's file
        self.exit_notes: list[str] = []  # printed by the CLI once the terminal is back
        self._theme_at_start = ""
        self.sub_title = str(self.data)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)) and not event.is_forwarded:
            # Training steps (in other threads) wait until this input is handled and
            # painted: they share the GIL with this thread (see ForegroundGate).
            foreground.hold(INPUT_HOLD_S)
            self.call_after_refresh(foreground.release)
        await super().on_event(event)

    def on_mount(self) -> None:
        if self.separate_process:
            warm_up()  # the trainer's forkserver imports torch while the data loads
        self._apply_theme()
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
        strategies = sorted(STRATEGIES, key=_aeep_first)
        return SetupScreen(self.data, classes, proposed.batch_size, proposed.strategy, strategies, self.config.keys)

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
            # Decoding and embedding the photos is all that runs while the person watches the
            # progress bar, so it takes every core (training later leaves one to the UI):
            # 1,500 flowers took 56 s to the first batch on one of two cores.
            with torch_threads(os.cpu_count() or 1):
                return LabellingSession.open(
                    self.data,
                    settings,
                    project_dir=self.project_dir,
                    progress=progress,
                    separate_process=self.separate_process,
                    trainer_threads=training_threads(),
                )

        self.run_worker(open_in_thread, thread=True, group=OPEN_GROUP, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != OPEN_GROUP:
            return
        if event.state == WorkerState.SUCCESS:
            session = cast(LabellingSession, event.worker.result)
            self.session, self.opened_project = session, session.project_path
            self._gc_thresholds = defer_full_collections()
            labelling = LabellingScreen(session)
            self.switch_screen(labelling)
            if self.start_in_review:
                self.call_later(labelling.action_review)
            elif self.resuming:  # a one-line reminder, not a question: the stored settings apply
                stats = session.stats
                self.notify(f"Resumed at round {stats.round}: {stats.labelled:,} labelled so far.", timeout=4)
        elif event.state == WorkerState.ERROR:
            self.error_message = str(event.worker.error)
            self.exit(return_code=2)

    # --- the theme ----------------------------------------------------------------
    def _apply_theme(self) -> None:
        """The config's theme, if Textual has it."""
        wanted = self.config.theme
        if wanted is not None and wanted in self.available_themes:
            self.theme = wanted
        elif wanted is not None:
            known = ", ".join(sorted(self.available_themes))
            self.notify(f"{self.config.path}: no theme {wanted!r}; use one of {known}", severity="warning", timeout=8)
        self._theme_at_start = self.theme

    def _persist_theme(self) -> None:
        """A theme picked in the palette (Theme) goes into the config file, once, on quit
        (the picker previews every theme it passes over; only the last one counts)."""
        if self.theme == self._theme_at_start:
            return
        try:
            save_setting("theme", self.theme, self.config.path)
        except (ConfigError, OSError) as exc:
            self.exit_notes.append(f"the theme {self.theme!r} was not saved: {exc}")

    # --- the command palette ------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for title, help_text, action in PALETTE:
            yield SystemCommand(title, help_text, partial(self.run_action, action))
        yield from super().get_system_commands(screen)

    def _labelling_screen(self) -> LabellingScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, LabellingScreen)), None)

    def action_stats(self) -> None:
        """The stats view over the labelling screen (once a project is open)."""
        if isinstance(self.screen, StatsScreen):
            return
        screen = self._labelling_screen()
        if screen is None:
            self.notify("Stats need an open project: finish the setup first.", severity="warning")
            return
        self.push_screen(StatsScreen(screen.session))

    def action_export_labels(self) -> None:
        """Every label as CSV in the project folder (the store is read on its own
        read-only connection, in a thread); a notice says where."""
        if self.session is None:
            self.notify("Nothing to export yet: finish the setup first.", severity="warning")
            return
        self._export(self.session.project_path)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, project: Path) -> None:
        from aeep_core.store.export import export_rows, format_export, write_atomically

        target = locations.export_file(project, time.strftime("%Y%m%d-%H%M%S"))
        try:
            rows = export_rows(project)
            write_atomically(target, format_export(rows, "csv"))
        except (StoreError, OSError) as exc:
            self.call_from_thread(self.notify, f"Export failed: {exc}", severity="error", timeout=10)
            return
        self.exported = target
        self.call_from_thread(self.notify, f"Exported {len(rows)} labels to {target}", timeout=10)

    # --- classes met while labelling -----------------------------------------------
    def _class_change_screen(self) -> LabellingScreen | None:
        """The labelling screen, when it is the one shown (class keys change under it);
        a notice and None otherwise."""
        screen = self._labelling_screen()
        if screen is None or self.screen is not screen:
            self.notify("Classes are changed from the labelling screen.", severity="warning")
            return None
        return screen

    def action_new_class(self) -> None:
        """A class nobody listed: ask its name, then add it with a key (the config's when free)."""
        if self._class_change_screen() is not None:
            self.push_screen(ClassNameScreen("Add a class: its name"), self._new_class)

    def _new_class(self, name: str | None) -> None:
        screen = self._labelling_screen()
        if name is None or screen is None:
            return
        classes = screen.session.classes
        names = classes.current.names
        preferred = key_map_for([*names, name], self.config.keys).get(len(names))
        try:
            key = key_for_new_class(name, [c.key for c in classes.current.live if c.key], preferred)
            added = self._changed(screen, classes.add, name, key)
        except ValueError as exc:
            self.notify(f"Not added: {exc}", severity="error", timeout=10)
            return
        if added is not None:
            self.notify(f"Added class '{added.name}': key {added.key}.")

    def action_rename_class(self) -> None:
        """Pick a class by its key, then type its new name."""
        screen = self._class_change_screen()
        if screen is None:
            return
        live = screen.session.classes.current.live
        self.push_screen(PickClassScreen("Rename which class?", live), lambda index: self._ask_new_name(screen, index))

    def _ask_new_name(self, screen: LabellingScreen, index: int | None) -> None:
        if index is None:
            return
        old = screen.session.classes.current[index].name

        def rename(name: str | None) -> None:
            if name is not None:
                self._changed(screen, screen.session.classes.rename, index, name)

        self.push_screen(ClassNameScreen(f"A new name for '{old}'", old), rename)

    def action_merge_classes(self) -> None:
        """Pick the class to merge away, then the class its labels go to."""
        screen = self._class_change_screen()
        if screen is None:
            return
        live = screen.session.classes.current.live
        self.push_screen(PickClassScreen("Merge which class away?", live), lambda source: self._ask_target(screen, source))

    def _ask_target(self, screen: LabellingScreen, source: int | None) -> None:
        if source is None:
            return
        classes = screen.session.classes
        name = classes.current[source].name
        others = [c for c in classes.current.live if c.index != source]

        def merge(target: int | None) -> None:
            moved = None if target is None else self._changed(screen, classes.merge, source, target)
            if moved is not None:
                self.notify(f"Merged '{name}' into '{classes.current[target].name}': {moved} label(s) moved.")

        self.push_screen(PickClassScreen(f"Merge '{name}' into which class?", others), merge)

    def _changed(self, screen: LabellingScreen, change: Callable[..., T], *args: object) -> T | None:
        """Make a class change (committed before it returns) and show it; a refusal or a
        failed write is a notice, and None."""
        try:
            result = change(*args)
        except (StoreError, OSError, sqlite3.Error, ValueError) as exc:
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return None
        screen.show_classes()
        return result

    def action_review(self) -> None:
        """The review screen over the labelling screen (for a command or the palette)."""
        screen = self._labelling_screen()
        if screen is None:
            self.notify("Review needs an open project: finish the setup first.", severity="warning")
            return
        screen.action_review()

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
        self._persist_theme()
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
