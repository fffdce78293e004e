"""Lets `python bench/<script>.py` import rollkit from the checkout without installing it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
