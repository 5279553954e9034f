import sys

from aeep_tui.cli import main

if __name__ == "__main__":  # a trainer process (multiprocessing) may import this module; it must not start the app
    sys.exit(main())
