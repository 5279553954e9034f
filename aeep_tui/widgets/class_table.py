"""The stats view's per-class table: which classes the person has seen, the labels of
each, the model's recall on it with its interval, and a warning where a class has too
few labels to trust (:func:`aeep_core.session.stats.per_class_figures`).

The warning, bar and muted styles are component classes, so the ``.tcss`` sets them and a
theme change repaints them.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from aeep_core.session.stats import MIN_RELIABLE_LABELS, AccuracyEstimate, ClassFigures, StatsReport
from aeep_tui.widgets.confusion import short

BAR_WIDTH = 12


def fmt_recall(recall: AccuracyEstimate) -> str:
    """``82% (70–90%)``; ``—`` when no guessed card of the class was answered."""
    if recall.accuracy is None:
        return "—"
    return f"{recall.accuracy:.0%} ({recall.low:.0%}–{recall.high:.0%})"


def class_warning(figures: ClassFigures) -> str:
    """What to tell the person about a class with too few labels; empty when it has enough."""
    if not figures.unreliable:
        return ""
    if not figures.seen:
        return f"⚠ not seen yet: the model is blind to '{figures.name}', label some"
    plural = "" if figures.labels == 1 else "s"
    return f"⚠ {figures.labels} label{plural}: the estimate is unreliable, label more of '{figures.name}'"


class ClassTable(Widget):
    """Per class, by class index: labels (with a bar), recall, and the rare-class warning."""

    COMPONENT_CLASSES = {"class-table--warning", "class-table--bar", "class-table--muted"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: StatsReport | None = None

    def show(self, report: StatsReport) -> None:
        """Draw ``report``'s per-class figures (the table's size may change: relayout)."""
        self.report = report
        self.refresh(layout=True)

    def render(self) -> RenderableType:
        # Built here, not in show: the component styles are read at paint time, so a
        # theme switched while the view is open recolours the warnings too.
        report = self.report
        if report is None:
            return ""
        warning = self.get_component_rich_style("class-table--warning")
        bar = self.get_component_rich_style("class-table--bar")
        muted = self.get_component_rich_style("class-table--muted")
        table = Table(
            title=f"Per class · classes seen: {report.classes_seen} of {len(report.per_class)}",
            title_justify="left",
            title_style="bold",
            caption=f"recall: the share of your answers of the class that the model had guessed (95% interval)"
            f" · ⚠ under {MIN_RELIABLE_LABELS} labels",
            caption_justify="left",
            box=None,
            pad_edge=False,
        )
        table.add_column("class", style="bold", no_wrap=True)
        table.add_column("labels", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        table.add_column("recall", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        top = max((f.labels for f in report.per_class), default=0) or 1
        for f in report.per_class:
            recall = fmt_recall(f.recall)
            table.add_row(
                short(f.name, 16),
                str(f.labels),
                Text("█" * round(BAR_WIDTH * f.labels / top), style=bar),
                Text(recall, style=muted if f.recall.accuracy is None else ""),
                Text(class_warning(f), style=warning),
            )
        if report.skipped:
            table.add_row(Text("skipped", style=muted), Text(str(report.skipped), style=muted))
        return table
