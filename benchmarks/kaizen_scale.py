"""The betting company's daily recommender on this one machine: 400K
customers x 300K games x 600M transactions (S = 1), implicit ALS k = 64,
15 sweeps, top-1250 for every customer (500M recommendations).

    PYTHONPATH=python /usr/bin/python3 benchmarks/kaizen_scale.py --scale 0.1
    ... --scale 1 --dir /big/disk        # the full size: about 30 GB of disk

Phases, each timed (wall seconds) with the process's peak RSS after it:

1. generate: a seeded power-law interaction log (customers and games drawn
   from Zipf-like popularities, exponent --zipf, numpy default_rng(--seed)),
   S x 600M events one millisecond apart, written in chunks as an HDF5
   event file (streamwise.hdf5.EventWriter, the C writer; uncompressed for
   speed: --gzip compresses).
2. matrix: the customer x game matrix built out of core: the file is
   replayed in chunks (streamwise.replay.hdf5), each event's (customer,
   game) key appended to one of --buckets bucket files by customer block;
   then each bucket is loaded alone, its keys counted (np.unique) into
   its rows of the CSR matrix (value: the number of events). Memory holds
   one chunk, one bucket and the growing matrix, never the whole log.
3. als: streamwise.ALS(factors=64, iterations=15, confidence "linear",
   alpha 1, regularization 0.01) on both cores.
4. top-N: ALS.recommend_all(N=1250): every customer's top 1250 games,
   their own history left out, into HDF5 shards of --block customers.

Customers and games scale with the square root of S (400K x 300K at S = 1,
126K x 95K at S = 0.1, 12.6K x 9.5K at S = 0.001, the CI size), so that
a customer's and a game's event counts shrink as sqrt(S) too.
Target at S = 1 on a 2-core, 24 GiB machine: under 45 minutes in total
with peak RSS under 20 GiB. --keep leaves the files in --dir.
"""
import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import scipy.sparse as sp  # noqa: E402

import streamwise as sw  # noqa: E402
from streamwise.hdf5 import EventWriter  # noqa: E402
from streamwise.recommend import read_topn  # noqa: E402

SCHEMA = {"time": "ts", "time_unit": "ms",
          "fields": {"customer": "int32", "game": "int32"}}
CHUNK = 4_000_000


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def popularity(n, zipf, rng):
    """The CDF of a Zipf-like popularity over n ids, in a random order of
    ids (the popular ones are not the low ids)."""
    w = 1.0 / np.arange(1, n + 1) ** zipf
    cdf = np.cumsum(w[rng.permutation(n)])
    return cdf / cdf[-1]


def generate(path, n_events, n_cust, n_games, zipf, seed, gzip):
    rng = np.random.default_rng(seed)
    cust_cdf = popularity(n_cust, zipf, rng)
    game_cdf = popularity(n_games, zipf, rng)
    with EventWriter(path) as w:
        w.table("bet", SCHEMA, provenance={
            "generator": "benchmarks/kaizen_scale.py", "seed": seed,
            "zipf": zipf}, compression="gzip" if gzip else None,
            chunk_rows=1 << 20)
        for lo in range(0, n_events, CHUNK):
            n = min(CHUNK, n_events - lo)
            w.append("bet", {
                "ts": 1_700_000_000_000 + np.arange(lo, lo + n,
                                                    dtype=np.int64),
                "customer": np.searchsorted(cust_cdf, rng.random(n),
                                            side="right").astype(np.int32),
                "game": np.searchsorted(game_cdf, rng.random(n),
                                        side="right").astype(np.int32)})


def build_matrix(path, n_cust, n_games, n_buckets, work):
    """Out of core: keys bucketed by customer block on disk, then each
    bucket counted alone."""
    per = -(-n_cust // n_buckets)
    files = [open(os.path.join(work, f"bucket{b:04d}.i64"), "wb")
             for b in range(n_buckets)]
    for batch in sw.replay.hdf5(path, "bet", batch_size=CHUNK):
        c = batch["customer"].astype(np.int64)
        key = c * n_games + batch["game"]
        b = c // per
        order = np.argsort(b, kind="stable")
        cuts = np.searchsorted(b[order], np.arange(n_buckets + 1))
        key = key[order]
        for k in range(n_buckets):
            if cuts[k + 1] > cuts[k]:
                key[cuts[k]:cuts[k + 1]].tofile(files[k])
    for f in files:
        f.close()
    indptr = np.zeros(n_cust + 1, dtype=np.int64)
    indices, data = [], []
    for k in range(n_buckets):
        fn = os.path.join(work, f"bucket{k:04d}.i64")
        keys, counts = np.unique(np.fromfile(fn, dtype=np.int64),
                                 return_counts=True)
        os.unlink(fn)
        rows = keys // n_games
        indptr[1:] += np.bincount(rows, minlength=n_cust)[:n_cust]
        indices.append((keys % n_games).astype(np.int32))
        data.append(counts.astype(np.float32))
        del keys, counts, rows
    np.cumsum(indptr, out=indptr)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices),
                          indptr), shape=(n_cust, n_games))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.001)
    ap.add_argument("--dir", default=None, help="work directory (default: "
                    "a temporary one, removed at the end)")
    ap.add_argument("--zipf", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--buckets", type=int, default=64)
    ap.add_argument("--block", type=int, default=16384)
    ap.add_argument("--N", type=int, default=1250)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    S = args.scale
    n_events = int(round(600e6 * S))
    n_cust = max(100, int(round(400_000 * S ** 0.5)))
    n_games = max(2 * args.N, int(round(300_000 * S ** 0.5)))
    work = args.dir or tempfile.mkdtemp(prefix="kaizen-")
    os.makedirs(work, exist_ok=True)
    events = os.path.join(work, "bets.h5")
    phases = []

    def phase(name, t0, note=""):
        phases.append((name, time.perf_counter() - t0, peak_gib(), note))
        print(f"{name}: {phases[-1][1]:.1f} s, peak RSS {phases[-1][2]:.2f} "
              f"GiB {note}", flush=True)

    print(f"S = {S}: {n_events:,} events, {n_cust:,} customers x "
          f"{n_games:,} games, k = {args.factors}, {args.iterations} "
          f"sweeps, top-{args.N}; in {work}", flush=True)
    t0 = time.perf_counter()
    generate(events, n_events, n_cust, n_games, args.zipf, args.seed,
             args.gzip)
    phase("generate + write HDF5", t0,
          f"({os.path.getsize(events) / 1e9:.2f} GB)")
    t0 = time.perf_counter()
    R = build_matrix(events, n_cust, n_games, args.buckets, work)
    phase("matrix, out of core", t0, f"({R.nnz:,} non-zeros)")
    t0 = time.perf_counter()
    als = sw.ALS(factors=args.factors, iterations=args.iterations,
                 random_state=args.seed).fit(R)
    phase("ALS fit", t0, f"({args.iterations} sweeps)")
    t0 = time.perf_counter()
    out = os.path.join(work, "topn")
    shards = als.recommend_all(out, N=args.N, block_users=args.block)
    n_recs = n_cust * args.N
    size = sum(os.path.getsize(s) for s in shards)
    phase("top-N to HDF5", t0, f"({n_recs:,} recommendations, "
          f"{size / 1e9:.2f} GB)")
    total = sum(p[1] for p in phases)
    # a spot check of what was written: the shards cover every customer
    # once and a sample matches recommend()
    users, items, _ = read_topn(out) if S <= 0.01 else (None, None, None)
    if users is not None:
        probe = np.arange(0, n_cust, max(1, n_cust // 50))
        want, _ = als.recommend(probe, R[probe], N=args.N)
        assert (items[probe] == want).all()
    print(f"\nKaizen scale S = {S}: {n_events:,} events, {n_cust:,} x "
          f"{n_games:,}, {R.nnz:,} non-zeros; load "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| phase | wall s | peak RSS GiB | |")
    print("|---|---:|---:|---|")
    for name, s, rss, note in phases:
        print(f"| {name} | {s:.1f} | {rss:.2f} | {note} |")
    print(f"| **total** | **{total:.1f}** ({total / 60:.1f} min) | "
          f"**{peak_gib():.2f}** | |")
    if not args.keep and args.dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
