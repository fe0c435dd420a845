#!/usr/bin/env python3
"""Summarise the molecule converge figures (tests/output/molecule/*.jsonl): per scenario
the first real converge's wall time and the runner's API requests (audit log), and the
idempotence run's. Prints a Markdown table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "tests" / "output" / "molecule"


def main() -> int:
    rows = []
    for path in sorted(ROOT.glob("*.jsonl")):
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        real = [r for r in runs if not r["check_mode"]]
        check = [r for r in runs if r["check_mode"]]
        if not real:
            continue
        conv, idem = real[-2] if len(real) >= 2 else real[-1], real[-1] if len(real) >= 2 else None
        rows.append((path.stem, conv["wall_s"], conv["api_requests"].get("total"),
                     idem["wall_s"] if idem else None, check[-1]["wall_s"] if check else None))
    print("| scenario | converge s | API requests | idempotent rerun s | check mode s |")
    print("|---|---|---|---|---|")
    for name, wall, api, idem, chk in rows:
        print(f"| {name} | {wall} | {api} | {idem if idem is not None else '-'} | {chk if chk is not None else '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
