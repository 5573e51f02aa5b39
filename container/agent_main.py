"""The self-contained /usr/bin/agent (PyInstaller's entry script): the Go image's names, chosen by argv[0]."""

import sys

from agent.entrypoints import main

if __name__ == "__main__":
    sys.exit(main())
