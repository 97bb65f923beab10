"""A DP firm's own ledger: one line per round, read back per firm, the latest round winning."""

from __future__ import annotations

from pathlib import Path

from clients.accounting import LedgerEntry, append_entry, ledger_file, read_ledgers


def test_each_firms_latest_round_is_read_back_whatever_its_name(tmp_path: Path) -> None:
    # Prepare: a firm whose name is not a file name, and a round written twice (a resume)
    odd = "north/east ..firm"
    append_entry(tmp_path, odd, LedgerEntry(1, 0.5, 1e-5, 1.2))
    append_entry(tmp_path, odd, LedgerEntry(2, 0.9, 1e-5, 1.2))
    append_entry(tmp_path, "payments", LedgerEntry(1, 0.4, 1e-5, 1.5))
    append_entry(tmp_path, "payments", LedgerEntry(1, 0.45, 1e-5, 1.5))
    # Execute
    latest = read_ledgers(tmp_path)
    # Assert
    assert latest == {
        odd: LedgerEntry(2, 0.9, 1e-5, 1.2),
        "payments": LedgerEntry(1, 0.45, 1e-5, 1.5),
    }
    assert ledger_file(tmp_path, odd).parent == tmp_path
    assert read_ledgers(tmp_path / "missing") == {}
