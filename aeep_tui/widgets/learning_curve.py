"""The learning curve with real axes (textual-plotext): accuracy against labels."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from aeep_core.session.stats import CurvePoint


class LearningCurve(PlotextPlot):
    """Per round: test accuracy (``--test``) and the accuracy of the guesses on the batch,
    made before the answers, both against the labels the choosing model had."""

    def show(self, points: Sequence[CurvePoint]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Learning curve")
        plt.xlabel("labels the model had")
        plt.ylabel("accuracy %")
        plt.ylim(0, 100)
        for attr, label, marker in (("test_accuracy", "test", "dot"), ("batch_accuracy", "guesses on the batch", "x")):
            known = [(p.labelled, 100 * getattr(p, attr)) for p in points if getattr(p, attr) is not None]
            if known:
                xs, ys = zip(*known)
                plt.plot(list(xs), list(ys), label=label, marker=marker)
        if not any(p.test_accuracy is not None or p.batch_accuracy is not None for p in points):
            plt.title("Learning curve: no accuracy yet (confirm a batch chosen by a model)")
        self.refresh()
