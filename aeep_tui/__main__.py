import sys

from aeep_tui.cli import main

sys.exit(main())
