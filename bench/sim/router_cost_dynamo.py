"""Dynamo's indexer on the index and queries of kvgate's router-cost bench (bench/sim/peer_cost.ts).

Run with the Python of the Dynamo venv the gateway bench installs (~/.cache/kvgate-bench/dynamo-1.6.1):
    python router_cost_dynamo.py INDEX_FILE [QUERIES]
INDEX_FILE is written by peer_cost.ts (layout in writeIndexFile there): the stored events (worker,
parent, engine hashes, local hashes), the queries as local block hashes, the tokens of the first
queries and kvgate's findMatches answers for the first queries. This script replays the events into
dynamo.llm.RadixTree (Dynamo's basic indexer, behind its binding's hop to a background thread),
checks that Dynamo hashes the tokens as kvgate did and finds the same matches, then times
find_matches on the same queries. It prints one JSON object on stdout.
"""

import json
import struct
import sys
import time

import numpy as np
from dynamo.llm import RadixTree, compute_block_hash_for_seq

MAGIC = b"KVGP"
WARMUP = 200
U64 = (1 << 64) - 1


class Reader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    def u32(self):
        (v,) = struct.unpack_from("<I", self.data, self.off)
        self.off += 4
        return v

    def u64(self):
        (v,) = struct.unpack_from("<Q", self.data, self.off)
        self.off += 8
        return v

    def array(self, dtype, n):
        a = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.off)
        self.off += a.nbytes
        return a


def stored_event(event_id, parent, engine_hashes, local_hashes):
    # Dynamo's KvCacheEvent, as its apply_event deserializes it (serde JSON).
    blocks = ",".join(
        '{"block_hash":%d,"tokens_hash":%d}' % (h, t) for h, t in zip(engine_hashes, local_hashes)
    )
    parent_json = "null" if parent is None else str(parent)
    return ('{"event_id":%d,"data":{"stored":{"parent_hash":%s,"blocks":[%s]}}}' % (event_id, parent_json, blocks)).encode()


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def summary(wall, cpu, w_total, c_total):
    return {
        "p50": pct(wall, 0.5),
        "p99": pct(wall, 0.99),
        "cpuP50": pct(cpu, 0.5),
        "cpuP99": pct(cpu, 0.99),
        "perSec": len(wall) / w_total,
        "perCpuSec": len(wall) / c_total,
    }


def time_interleaved(calls, args):
    """Each call of `calls` on each argument in turn, so that all of them meet the same load on a
    shared machine: wall and process CPU time (every thread, the binding's worker thread too) per
    call in µs, and the per-argument wall difference of the last call over the one before it."""
    wall = [[] for _ in calls]
    cpu = [[] for _ in calls]
    w_total = [0] * len(calls)
    c_total = [0] * len(calls)
    for a in args:
        for k, fn in enumerate(calls):
            c0 = time.process_time_ns()
            t0 = time.perf_counter_ns()
            fn(a)
            t1 = time.perf_counter_ns()
            c1 = time.process_time_ns()
            wall[k].append((t1 - t0) / 1000)
            cpu[k].append((c1 - c0) / 1000)
            w_total[k] += t1 - t0
            c_total[k] += c1 - c0
    results = [summary(wall[k], cpu[k], w_total[k] / 1e9, c_total[k] / 1e9) for k in range(len(calls))]
    if len(calls) < 2:
        return results, None
    diff = [b - a for a, b in zip(wall[-2], wall[-1])]
    return results, {"p50": pct(diff, 0.5), "p99": pct(diff, 0.99)}


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        r = Reader(f.read())
    if r.data[:4] != MAGIC:
        raise SystemExit(f"{path}: not a kvgate peer index file")
    r.off = 4
    block_size = r.u32()

    tree = RadixTree()
    n_events = r.u32()
    blocks = 0
    t0 = time.perf_counter()
    for event_id in range(n_events):
        worker = r.u32()
        has_parent = r.u32()
        parent = r.u64()
        n = r.u32()
        engine = (r.array("<i8", n).astype(np.uint64)).tolist()
        local = r.array("<u8", n).tolist()
        tree.apply_event(worker, stored_event(event_id, parent if has_parent else None, engine, local))
        blocks += n
    build_seconds = time.perf_counter() - t0

    queries = [r.array("<u8", r.u32()).tolist() for _ in range(r.u32())]
    token_queries = [r.array("<u4", r.u32()).tolist() for _ in range(r.u32())]
    expected = []
    for _ in range(r.u32()):
        m = r.u32()
        pairs = r.array("<u4", 2 * m).reshape(m, 2).tolist()
        expected.append({(w, 0): d for w, d in pairs})

    # Same hashes: Dynamo's own hashing of the query tokens against the hashes kvgate sent.
    hash_mismatches = sum(
        1 for i, toks in enumerate(token_queries) if compute_block_hash_for_seq(toks, block_size) != queries[WARMUP + i]
    )
    # Same index: Dynamo's overlap per worker against kvgate's findMatches.
    match_mismatches = sum(1 for i, want in enumerate(expected) if dict(tree.find_matches(queries[WARMUP + i]).scores) != want)
    if tree.find_matches([0]).scores:
        raise SystemExit("a stored block has local hash 0: the miss queries would match")

    # The binding's own cost beside the index's, query by query on the same tree (each tree has
    # its own thread): a one-block query and the same query that miss at the first block (no
    # stored block has local hash 0), then the query itself.
    for q in queries[:WARMUP]:
        tree.find_matches(q)
    measured = [(q, [0] + q[1:]) for q in queries[WARMUP:]]
    (hop_one, hop_query, find), walk = time_interleaved(
        [lambda a: tree.find_matches([0]), lambda a: tree.find_matches(a[1]), lambda a: tree.find_matches(a[0])], measured
    )
    (hashing,), _ = time_interleaved([lambda toks: compute_block_hash_for_seq(toks, block_size)], token_queries)

    json.dump(
        {
            "events": n_events,
            "blocks": blocks,
            "buildSeconds": build_seconds,
            "queries": len(measured),
            "hashChecked": len(token_queries),
            "hashMismatches": hash_mismatches,
            "matchChecked": len(expected),
            "matchMismatches": match_mismatches,
            "find": find,
            "hash": hashing,
            "hopOneBlock": hop_one,
            "hopQuery": hop_query,
            "walk": walk,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
