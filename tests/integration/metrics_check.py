#!/usr/bin/python3
"""Reads a /metrics text on stdin, parses it with an independent parser (Debian's
python3-prometheus-client, prometheus_client.parser) and checks what any valid exposition must
hold; prints the samples as JSON for the calling test to check values.

Checks: every family has HELP and a known TYPE, once, and no two share a name once counters lose
their _total (OpenMetrics); every sample belongs to its family; each
histogram series has increasing `le` bounds ending at +Inf, cumulative counts that never go
down, `+Inf` equal to `_count`, and a `_sum`. Exits 1 and names the first problem otherwise.

Output: {"families": {name (counters with their _total): type}, "samples": [[name, {labels}, value], ...],
         "histograms": {name: [{"labels": {...}, "buckets": [[le, count], ...], "sum": s,
                                "count": n}, ...]}}
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def main():
    text = sys.stdin.read()
    if not text.endswith("\n"):
        fail("the exposition must end with a newline")
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        fail(f"parser refused the text: {e}")

    out = {"families": {}, "samples": [], "histograms": {}}
    seen = set()
    for family in families:
        # The parser names a counter without its _total, as OpenMetrics does: a gauge `x` and a
        # counter `x_total` would be one family there, and an OpenMetrics scraper refuses that.
        if family.name in seen:
            fail(f"family {family.name} appears twice (a counter's name is its family's + _total)")
        seen.add(family.name)
        if family.type not in ("counter", "gauge", "histogram"):
            fail(f"family {family.name}: type {family.type} (no or unknown TYPE line)")
        if not family.documentation:
            fail(f"family {family.name}: no HELP")
        out["families"][family.name + ("_total" if family.type == "counter" else "")] = family.type
        series = {}
        for sample in family.samples:
            if not sample.name.startswith(family.name):
                fail(f"sample {sample.name} outside its family {family.name}")
            out["samples"].append([sample.name, sample.labels, sample.value])
            if family.type != "histogram":
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            s = series.setdefault(key, {"labels": labels, "buckets": [], "sum": None, "count": None})
            suffix = sample.name[len(family.name):]
            if suffix == "_bucket":
                s["buckets"].append([sample.labels["le"], sample.value])
            elif suffix == "_sum":
                s["sum"] = sample.value
            elif suffix == "_count":
                s["count"] = sample.value
            else:
                fail(f"histogram {family.name}: unexpected sample {sample.name}")
        for s in series.values():
            where = f"histogram {family.name}{s['labels']}"
            if s["sum"] is None or s["count"] is None:
                fail(f"{where}: no _sum or _count")
            bounds = [float(le) for le, _ in s["buckets"]]
            if not bounds or not math.isinf(bounds[-1]):
                fail(f"{where}: the last bucket is not +Inf")
            if any(b >= a for a, b in zip(bounds[1:], bounds)):
                fail(f"{where}: bounds not increasing: {bounds}")
            counts = [n for _, n in s["buckets"]]
            if any(b < a for a, b in zip(counts, counts[1:])):
                fail(f"{where}: buckets not cumulative: {counts}")
            if counts[-1] != s["count"]:
                fail(f"{where}: +Inf bucket {counts[-1]} != _count {s['count']}")
            if s["sum"] < 0:
                fail(f"{where}: negative _sum")
            out["histograms"].setdefault(family.name, []).append(s)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
