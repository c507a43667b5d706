"""The sorting guide's search: the in-memory index over the shipped items, timed per kind of query.

    .venv/bin/python -m bench.bench_guide

Builds the index once (as a process does on its first search), then times each query RUNS times and
prints the median and the worst, in milliseconds: characters, a homophone typo, full pinyin, a pinyin
typo, initials, a fragment, a sentence. The service adds one indexed query (the community's own
entries) and, for a search that found nothing, one upsert. No database here.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")

RUNS = int(os.environ.get("RUNS", "200"))
QUERIES = ["大骨头", "大谷头", "dagutou", "dagutuo", "dgt", "电池", "一个烂苹果", "xigua", "塑料", "量子计算机", "niunaihe", "过期药"]


def main() -> None:
    from app.guide.service import guide

    started = time.perf_counter()
    index = guide()
    print(f"index: {len(index.items)} items, {len(index.han)} keys, built in {(time.perf_counter() - started) * 1000:.0f} ms")
    for q in QUERIES:
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t) * 1000)
        print(f"{q:>12}  median {statistics.median(times):6.2f} ms   worst {max(times):6.2f} ms")


if __name__ == "__main__":
    main()
