"""``python -m sluicegate.bench ...``: the bench and profile commands without the main CLI."""

from __future__ import annotations

import sys

from sluicegate.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
