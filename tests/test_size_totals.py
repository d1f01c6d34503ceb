"""`size`: totals over the masked tensors against the sum of their entropy bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.artifact import write_artifact
from ticketpack.cli.main import main
from ticketpack.ticket import PlainTensor, Ticket

from tests.tiny import make_ticket


def test_totals_are_the_sums_of_the_masked_rows(tmp_path):
    write_artifact(make_ticket(), tmp_path / "a.tpk")
    result = CliRunner().invoke(main, ["size", str(tmp_path / "a.tpk"), "--json"])
    report = json.loads(result.stdout)
    masked = [t for t in report["tensors"] if t["kind"] == "masked"]
    n = sum(t["connections"] for t in masked)
    bound = sum(t["entropy_bound_bytes"] for t in masked)
    symbols = sum(t["symbol_bytes"] for t in masked)
    assert report["masked_connections"] == n == 24 * 16 + 8 * 12
    assert report["masked_bytes"] == sum(t["bytes"] for t in masked)
    assert report["masked_bits_per_connection"] == pytest.approx(8 * report["masked_bytes"] / n)
    assert report["entropy_bound_bytes"] == pytest.approx(bound)
    assert report["entropy_bound_bits_per_connection"] == pytest.approx(8 * bound / n)
    assert report["mask_over_bound_bytes"] == pytest.approx(symbols - bound)
    assert report["mask_over_bound_percent"] == pytest.approx(100 * (symbols - bound) / bound)
    file_bytes = (tmp_path / "a.tpk").stat().st_size
    assert report["artifact_over_bound_bytes"] == pytest.approx(file_bytes - bound)
    assert report["artifact_over_bound_percent"] == pytest.approx(100 * (file_bytes - bound) / bound)

    text = CliRunner().invoke(main, ["size", str(tmp_path / "a.tpk")]).stdout
    assert (f"masked tensors: {n:,} connections in {report['masked_bytes']:,} B = "
            f"{report['masked_bits_per_connection']:.4f} bits/connection; entropy bound "
            f"{bound:,.0f} B = {8 * bound / n:.4f} bits/connection") in text
    assert f"whole artifact {file_bytes - bound:+,.0f} B (" in text


def test_no_masked_tensors_no_totals(tmp_path):
    ticket = Ticket(seed=1, config={}, tensors=[PlainTensor("g", np.ones(4, np.float16))])
    write_artifact(ticket, tmp_path / "p.tpk")
    report = api.size(tmp_path / "p.tpk")
    assert report.masked_connections == 0 and report.masked_bits_per_connection is None
    assert "masked tensors" not in CliRunner().invoke(main, ["size", str(tmp_path / "p.tpk")]).stdout
