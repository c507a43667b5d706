"""The ingest benchmark's harness reads wrk's and pgbench's reports and py-spy's stacks correctly.

The benchmark itself is run by `bench/run.sh`, never by the suite; this only checks its moving parts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.checkin import co_corrected, latency_figures, parse_pgbench, parse_wrk, summarise_profile

ROOT = Path(__file__).resolve().parents[2]

WRK = """Running 20s test @ http://127.0.0.1:8000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.02ms    9.71ms 186.88ms   82.48%
    Req/Sec   768.84    102.29     1.02k    70.25%
  Latency Distribution
     50%   19.54ms
     75%   24.80ms
     90%   30.87ms
     99%    1.02s
  30641 requests in 20.02s, 9.32MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:   1530.41
Transfer/sec:    476.62KB
"""

PGBENCH = """transaction type: checkin.sql
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 62000
number of failed transactions: 0 (0.000%)
latency average = 10.3 ms
initial connection time = 25.1 ms
tps = 3101.512345 (without initial connection time)
"""


def test_wrk_report_is_read():
    figures = parse_wrk(WRK)
    assert figures == {"tps": 1530.41, "p50_ms": 19.54, "p99_ms": 1020.0, "requests": 30641, "non_2xx": 12, "socket_errors": 3}


def test_wrk_microseconds_are_read():
    assert parse_wrk(WRK.replace("19.54ms", "950.00us"))["p50_ms"] == pytest.approx(0.95)


def test_pgbench_report_and_log_are_read():
    log = [f"{i % 32} {i} {1000 * (i + 1)} 0 1763884800 {i}" for i in range(100)]  # latencies 1..100 ms
    figures = parse_pgbench(PGBENCH, log)
    assert figures["tps"] == pytest.approx(3101.512345)
    assert (figures["p50_ms"], figures["p99_ms"], figures["requests"], figures["failed"]) == (51.0, 99.0, 100, 0)
    # 32 clients, 20 s, 100 transactions: an interval of 6.4 s, longer than any of them: nothing corrected.
    assert figures["p99_co_ms"] == figures["p99_ms"]


def test_the_coordinated_omission_correction_is_wrks():
    """wrk's printed percentiles count, for an answer that took n, also n - i, n - 2i, ... down to the
    interval i (its stats_correct); per-request figures do not."""
    assert co_corrected([1000, 3500], 1000) == [1000, 1500, 2500, 3500]
    assert co_corrected([1000, 1900], 1000) == [1000, 1900]  # under twice the interval: nothing added
    # One connection, 1 s: 998 answers of 1 ms and two of 10 ms (interval 1 ms). Per request the p99 is
    # 1 ms; corrected, the two stalls add 2, 3, ..., 9 ms each (16 samples) and the p99 is 5 ms.
    figures = latency_figures([1000] * 998 + [10_000] * 2, seconds=1.0, connections=1)
    assert figures == {"p50_ms": 1.0, "p99_ms": 1.0, "p99_co_ms": 5.0}


def test_profile_summary_groups_our_code_and_leaf_frames():
    stacks = [
        'process 1:"uvicorn";run (asyncio/runners.py:10);adjust (/srv/app/ledger/flows.py:80);wait (/v/site-packages/psycopg/connection.py:9) 30',
        'process 1:"uvicorn";run (asyncio/runners.py:10);adjust (/srv/app/ledger/flows.py:80);validate (/v/site-packages/pydantic/main.py:5) 10',
        'process 1:"uvicorn";run (asyncio/runners.py:10) 60',
    ]
    tables = summarise_profile(stacks)
    assert tables["app"] == [("adjust (app/ledger/flows.py)", 40.0)]
    assert tables["self"][0] == ("run (asyncio/runners.py)", 60.0)
    assert dict(tables["package"]) == {"asyncio": 60.0, "psycopg": 30.0, "pydantic": 10.0}


def test_scripts_parse():
    subprocess.run(["sh", "-n", str(ROOT / "bench" / "run.sh")], check=True)
    lua = (ROOT / "bench" / "checkin.lua").read_text()
    for hook in ("function setup(", "function init(", "function request(", "function response(", "function done("):
        assert hook in lua
    subprocess.run([sys.executable, "-m", "bench.checkin", "--help"], cwd=ROOT, check=True, capture_output=True)


def test_a_run_replaces_its_benchmarks_latest_section_and_adds_a_history_line():
    from bench.common import RESULTS, recorded

    text = RESULTS.read_text()
    before = text.split("## History\n", 1)[1].count("\n| 20")
    block = "### Offline batch of 1000 scans — 2027-01-01 00:00 UTC\n\nMachine: m\n\nnew figures\n"
    after = recorded(text, "batch", block, "| 2027-01-01 00:00 | batch | median 1 ms | m, load 0.0 |")
    latest, history = after.split("## Latest run of each benchmark\n", 1)[1].split("## History\n", 1)
    benchmarks = re.search(r"for name in \$\{\*:-([a-z ]+)\}", (ROOT / "bench" / "run.sh").read_text()).group(1).split()
    assert latest.count("<!-- bench:") == text.count("<!-- bench:") == len(benchmarks)  # one section per benchmark, still
    assert "new figures" in latest and "2026-12-03 23:13 UTC" not in latest.split("<!-- bench:batch -->", 1)[1].split("<!-- bench:")[0]
    assert latest.index("<!-- bench:ingest -->") < latest.index("<!-- bench:batch -->") < latest.index("<!-- bench:passbook -->")
    assert history.count("\n| 20") == before + 1 and history.rstrip().endswith("| m, load 0.0 |")
    assert recorded(after, "batch", block, "| x |").count("new figures") == 1
