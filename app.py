"""RF-DETR Keypoint demo: the Space's and Docker's entry point. All logic lives in ``rfdetr_demo`` (see serve.py)."""

from __future__ import annotations

import sys

from rfdetr_demo.serve import main

if __name__ == "__main__":
    main(sys.argv[1:])
