#!/usr/bin/env python3
"""Small parsers for bench/run.sh: each subcommand reads one tool's output and prints
numbers (milliseconds unless said otherwise), one result per line, space-separated."""

import json
import re
import socket
import statistics
import sys


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def hyperfine(path):
    """name median_s min_s max_s stddev_s runs, one line per command."""
    for r in json.load(open(path))["results"]:
        name = r["command"].split()[0].rsplit("/", 1)[-1]
        print(
            name,
            f"{r['median']:.6f}",
            f"{r['min']:.6f}",
            f"{r['max']:.6f}",
            f"{r['stddev'] or 0:.6f}",
            len(r["times"]),
        )


def probe(path, step):
    """p50 p99 samples of one step in a probe JSON report."""
    report = json.load(open(path))
    for p in report["probes"]:
        for s in p["steps"]:
            if s["name"] == step and s["latency"]:
                lat = s["latency"]
                print(f"{lat['p50'] * 1e3:.3f} {lat['p99'] * 1e3:.3f} {lat['samples']}")
                return
    sys.exit(f"no step {step} with latency in {path}")


def oha(path):
    """p50 p99 requests_per_second of an oha JSON summary."""
    d = json.load(open(path))
    p = d["latencyPercentiles"]
    print(f"{p['p50'] * 1e3:.3f} {p['p99'] * 1e3:.3f} {d['summary']['requestsPerSec']:.1f}")


def hey(path):
    """p50 p99 requests_per_second of hey's text summary."""
    text = open(path).read()
    pct = dict(re.findall(r"^\s+(\d+)%+ in ([0-9.]+) secs", text, re.M))
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)
    print(f"{float(pct['50']) * 1e3:.3f} {float(pct['99']) * 1e3:.3f} {float(rps):.1f}")


def wrk(path):
    """requests_per_second of wrk's text summary."""
    print(re.search(r"Requests/sec:\s+([0-9.]+)", open(path).read()).group(1))


def quantile(sorted_values, q):
    # Nearest rank, as HDR histograms and oha report it.
    i = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def samples(path):
    """p50 p99 count of a file of seconds, one a line (blackbox probe_duration_seconds)."""
    v = sorted(float(x) for x in open(path).read().split())
    print(f"{quantile(v, 0.5) * 1e3:.3f} {quantile(v, 0.99) * 1e3:.3f} {len(v)}")


def median(*values):
    print(statistics.median(float(v) for v in values))


def credentials(path):
    """app_store_jwt_signatures google_token_fetches iterations from a probe info log."""
    for line in open(path):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the log may be coloured
        if "credentials acquired" in line:
            f = dict(re.findall(r"(\w+)=(\d+)", line))
            print(f["app_store_jwt_signatures"], f["google_token_fetches"], f["iterations"])
            return
    sys.exit(f"no 'credentials acquired' line in {path}")


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
