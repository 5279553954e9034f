"""Sub-commands of ``aeep-tui``; each module owns its arguments and its ``run``."""
