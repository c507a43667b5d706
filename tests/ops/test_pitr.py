"""Point-in-time recovery (issue 21): scripts/pitr_drill.py archives WAL, takes a base backup, recovers a
second cluster to a chosen time and verifies its ledger — run here with the embedded binaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_pitr_drill_recovers_to_the_chosen_time_with_a_clean_ledger():
    # Its own temporary folder (not pytest's, which only root may enter: as root the clusters run as
    # the system user jianfei-pg).
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "pitr_drill.py")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "streets (1 and 3)" in done.stdout and "2 streets" in done.stdout.split("recovered to")[1]
    assert "primary: 3 streets" in done.stdout
    assert "Ledger is consistent" in done.stdout and "[ok]" in done.stdout
