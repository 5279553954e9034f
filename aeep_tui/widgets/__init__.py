"""Widgets of the labelling app: item cards, the stats side panel, the retrain bar."""
