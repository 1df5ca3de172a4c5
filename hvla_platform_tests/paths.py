"""Where the tests find the checkout and the shared test data (real files written by other tools)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
