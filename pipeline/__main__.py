"""`python -m pipeline COMMAND`: only dispatches; the commands live in `pipeline.cli`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
