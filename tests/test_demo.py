"""`sbi-setauth demo` runs every scenario against real servers and reports each decision."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest

from sbi_setauth.cli import build_parser
from sbi_setauth.demo import Outcome, Scenario, run_demo

SCENARIO_CAUSES = [
    "ACCESS_TOKEN_MISSING",
    "ACCESS_TOKEN_INVALID",
    "INSUFFICIENT_SCOPE",
    "CCA_VERIFICATION_FAILURE",
    "PEER_CERTIFICATE_INVALID",
    "invalid_client",
    "NF_SET_ID_MISSING",
    "NF_SET_ID_MISMATCH",
    "SET_TOKEN_IN_USE",
    "TOKEN_CCA_MISMATCH",
]


def _demo_folders() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("sbi-setauth-demo-*")}


def test_demo_decides_every_scenario_as_expected() -> None:
    before = _demo_folders()
    out = io.StringIO()

    status = run_demo(out=out)

    text = out.getvalue()
    assert status == 0, text
    table = text.split("\nscenario ", 1)[1]
    rows = [line for line in table.splitlines()[2:] if line.strip()][:-1]
    assert len(rows) >= 15
    assert all(row.rstrip().endswith("ok") for row in rows), table
    assert re.search(r"\bFAIL\b", text) is None
    assert all("(HTTP/2)" in row for row in rows)
    for cause in SCENARIO_CAUSES:
        assert f"{cause} ({'HTTP/2'})" in table
    assert "takes over" in table
    assert "via SCP" in table
    assert _demo_folders() == before


def test_scenario_counts_only_the_expected_answer_over_http2() -> None:
    scenario = Scenario("set token from AMF 2 while AMF 1 holds it", 403, "SET_TOKEN_IN_USE")
    assert scenario.matches(Outcome(403, "SET_TOKEN_IN_USE", "HTTP/2"))
    assert not scenario.matches(Outcome(403, "SET_TOKEN_IN_USE", "HTTP/1.1"))
    assert not scenario.matches(Outcome(200, None, "HTTP/2"))
    assert not scenario.matches(Outcome(403, "NF_SET_ID_MISMATCH", "HTTP/2"))


@pytest.mark.parametrize("argv", [["demo"], ["demo", "--verbose"]])
def test_demo_subcommand_is_wired_to_run_demo(argv: list[str]) -> None:
    arguments = build_parser().parse_args(argv)
    assert arguments.handler.__name__ == "_demo"
    assert arguments.verbose is (argv[-1] == "--verbose")
