#!/usr/bin/env python3
"""Draws bench/results/<profile>.png from <profile>.json: for each run, the time by which the
k-th cluster was converged (Available; or every Shard Available where the run fell back), against k,
with the floor (every pod Ready and claim Bound, objects written directly) for comparison."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def per_cluster(run):
    times = run["clusters"]["per_cluster"] if run["clusters"]["complete"] else run["shards"]["per_cluster"]
    return sorted(times.values())


def main(path):
    report = json.load(open(path))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    runs = [r for r in [report.get("main")] + report.get("scale_out", []) if r]
    for r in runs:
        t = per_cluster(r)
        label = f"operator, {r['shard_replicas']} shard-controller replica(s)"
        if not r["clusters"]["complete"]:
            label += " (Shards Available)"
        ax.plot(range(1, len(t) + 1), t, marker=".", label=label)
    floor = report.get("main_floor")
    if floor:
        t = sorted(floor["per_cluster"].values())
        ax.plot(range(1, len(t) + 1), t, linestyle="--", color="black", label="floor (objects written directly)")
    ax.set_xlabel("clusters converged")
    ax.set_ylabel("seconds since apply")
    shape = report["shape"]
    ax.set_title(
        f"{report['profile']}: {report['total_shards']} Shards, {report['total_pods']} pods "
        f"({shape['clusters']} clusters), {report['machine']['nproc']} CPUs"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    out = path[: -len(".json")] + ".png"
    fig.tight_layout()
    fig.savefig(out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
