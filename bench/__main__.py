"""`python -m bench [--smoke]` (`make bench`): every benchmark in turn; each also runs alone (`python -m bench.<name>`).

Results are merged into bench/results.json (see bench/common.py for BENCH_RESULTS, BENCH_OUT
and the smoke mode); the table of docs/benchmarks.md is made from it. A benchmark that fails is
reported and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

from bench import common

# every benchmark; docs/benchmarks.md lists the same, tests/bench/test_bench_smoke.py runs each
MODULES = ("load_segments", "email_batching", "campaign_pace", "campaign_resume", "campaign_scale", "elt", "cli",
           "events")


def main(argv: list[str]) -> int:
    common.parent_args(argv, "python -m bench")
    common.isolate()
    started = time.perf_counter()
    failed = []
    for name in MODULES:
        print(f"== bench.{name}", flush=True)
        t = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception:  # noqa: BLE001 - report it and go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        print(f"   ({time.perf_counter() - t:.0f} s)", flush=True)
    print(f"all benchmarks: {time.perf_counter() - started:.0f} s" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
