"""Print bench/results.json (or BENCH_RESULTS) as the Markdown table of docs/benchmarks.md.

    python -m bench.table
"""

from __future__ import annotations

import json

from bench import common


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first} to {last}"


def markdown() -> str:
    rows = json.loads(common.results_path().read_text())
    lines = [
        "| benchmark | value (median) | min / max | runs | baseline | ratio | peak RSS MB | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        met = "" if e.get("goal_met") is None else ("yes" if e["goal_met"] else "**no**")
        lines.append(
            f"| {e['name']} | {_num(e['value'])} {e['unit']} | {_num(e['min'])} / {_num(e['max'])} | {e['runs']} "
            f"| {_num(e['baseline'])} | {_num(e['ratio'])} | {_num(e.get('peak_rss_mb'))} | {e.get('goal') or ''} "
            f"| {met} |"
        )
    machines = {json.dumps(e["machine"], sort_keys=True) for e in rows}
    dates = sorted(e["date"] for e in rows)
    for m in map(json.loads, sorted(machines)):
        lines.append("")
        lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}; "
                     f"measured {_span(dates[0][:10], dates[-1][:10])}.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
