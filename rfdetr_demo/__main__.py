"""``python -m rfdetr_demo serve|predict|evaluate ...``: the ``rfdetr-demo`` command (see :mod:`rfdetr_demo.cli`)."""

from __future__ import annotations

import sys

from rfdetr_demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
