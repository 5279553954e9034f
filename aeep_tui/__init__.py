"""aeep_tui — the Textual labelling app and the ``aeep-tui`` command line."""
