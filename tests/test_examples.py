"""The in-process quick start prints what the README says it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.py"


def test_quickstart_prints_accepted_and_rejected_requests() -> None:
    result = subprocess.run(
        [sys.executable, str(QUICKSTART)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [line.split()[:2] for line in result.stdout.splitlines()]
    assert lines == [
        ["200", "accepted"],
        ["403", "NF_SET_ID_MISSING"],
        ["403", "NF_SET_ID_MISMATCH"],
        ["403", "SET_TOKEN_IN_USE"],
        ["401", "ACCESS_TOKEN_MISSING"],
    ]
