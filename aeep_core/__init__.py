"""aeep_core — the UI-free engine of aeep-tui.

Pools of items (images or event sequences), the pairwise CNN, the query strategies
(AEEP and its baselines) and the active learner that orchestrates rounds. Nothing in
this package imports Textual.
"""

__version__ = "0.1.0"
