"""Run the benchmarks one after another: `python -m bench [name ...]` (`make bench`).

With no names, runs every benchmark below except the long reminder soak. Each one runs in its own
process (so one's imports and memory do not colour the next) with its default arguments; run a
module directly (`python -m bench.export --help`) for its options. The figures are printed; copy
them into docs/benchmarks.md with the machine, the date and the load average.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BENCHES = {
    "checkins_load": "POST /v1/checkins against the /healthz floor under gunicorn (issue 3)",
    "adherence": "one year of adherence for a patient with three regimens (issue 3)",
    "summaries": "weekly summaries for 10,000 patients, on-demand summary (issue 6)",
    "export": "own export 1x/10x and FHIR Bulk Data for 10,000 patients (issue 7)",
    "dashboard": "HTML and API rosters of 1,000 consented patients, a patient page (issues 12, 17)",
    "reminders_dispatch": "reminder dispatch throughput (issue 4)",
    "reminders_soak": "two schedulers side by side for a while (issue 4; long, only by name)",
    "vs_plain": "floor and check-in against a plain Flask app, side by side (issue 17; needs wrk)",
    "first_summary": "a worker's first summary against its second (issue 17)",
    "first_sync": "a new phone's first sync of three years of data (issue 17)",
    "agenda": "GET /v1/agenda with one and three years of history (issue 17)",
    "floor_layers": "what each layer of ours costs on GET /healthz, in-process (issue 17)",
}
DEFAULT = [name for name in BENCHES if name != "reminders_soak"]


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        for name, what in BENCHES.items():
            print(f"  {name:20} {what}")
        return 0
    unknown = [name for name in argv if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    failed = []
    for name in argv or DEFAULT:
        print(f"== bench.{name}: {BENCHES[name]} (load average {os.getloadavg()[0]:.2f})")
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"== bench.{name}: exit {code} after {time.perf_counter() - started:.0f} s")
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
