#!/usr/bin/env python3
"""Attributes a controller's peak heap to what it caches, from a heaptrack profile.

    heaptrack_print -f shard-controller.zst --flamegraph-cost-type peak -F peak.folded
    python3 bench/heap-by-type.py peak.folded

Bytes under kube's reflector store (`apply_watcher_event`) are grouped by the Kubernetes types
on the stack below it (pod.rs > object_meta.rs > managed_fields_entry.rs: a Pod's managedFields);
the rest by a few subsystems. See docs/performance.md."""
import collections
import re
import sys

# Frames too generic to say what is being stored.
GENERIC = {"alloc.rs", "mod.rs", "slice.rs", "str.rs", "borrow.rs", "function.rs", "option.rs",
           "map.rs", "node.rs", "raw_vec.rs", "clone.rs", "vec.rs", "string.rs", "iterator.rs",
           "mem.rs", "ptr.rs", "boxed.rs", "navigate.rs", "append.rs", "hash.rs", "sync.rs",
           "arc.rs", "lib.rs", "async_stream.rs", "stream.rs", "event_decode.rs"}
SUBSYSTEMS = [("watch streams (pages being decoded)", "watcher"), ("etcd client", "etcd_client"),
              ("gRPC (tonic)", "tonic"), ("HTTP (hyper)", "hyper"), ("reconcile", "reconcile")]


def main(path):
    total, store, by_type, other = 0, 0, collections.Counter(), collections.Counter()
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        n = int(n)
        total += n
        if not n:
            continue
        if "apply_watcher_event" in stack:
            store += n
            files = [m.group(1) for f in stack.split("apply_watcher_event", 1)[1].split(";")
                     if (m := re.search(r"\(([^)]*)\)$", f))]
            kept = [f for f in dict.fromkeys(files) if f not in GENERIC and f != "store.rs"]
            by_type[" > ".join(kept[:4]) or "(store itself)"] += n
        else:
            other[next((name for name, key in SUBSYSTEMS if key in stack), "other")] += n
    mb = lambda b: f"{b / 1e6:7.1f} MB"
    print(f"peak heap {mb(total)}; in reflector stores {mb(store)} ({100 * store / max(total, 1):.0f} %)")
    managed = sum(v for k, v in by_type.items() if "managed_fields" in k)
    print(f"  of which managedFields {mb(managed)}")
    for key, n in by_type.most_common(15):
        print(f"  {mb(n)}  {key}")
    print("outside the stores:")
    for key, n in other.most_common():
        print(f"  {mb(n)}  {key}")


if __name__ == "__main__":
    main(sys.argv[1])
