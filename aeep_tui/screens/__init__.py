"""Screens of the labelling app: setup (first open), opening, labelling, help."""
