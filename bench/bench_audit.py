"""`make bench` (audit part): the audit log's append, verify and query speed on 1M entries.

Builds a fresh SQLite database under ``bench-out/audit/`` holding ``--entries``
(default 1,000,000) varied entries — a year of a 20-site, 1,000-node fleet:
imports, rollouts, node enrolments, change approvals, refusals — hashed with
the log's own code (:meth:`AuditRecord.entry`, :func:`leaf_hash`,
:func:`chain_hash`; leaf hashes in two processes, chained in order) and
inserted in batches. Then measures, each side by side with a reference run on
the same file in the same run:

* **append rate** through :meth:`AuditLog.record` — entries in batches of 100
  inside one transaction, and single entries each committed on its own
  (``synchronous=FULL``: one fsync per commit) — against plain ``sqlite3``
  INSERTs of already-hashed rows into the same table (same indexes, same
  pragmas, same batching): the database's own cost, without hashing or ORM;
* **verify rate** of :func:`verify_log` over the whole log (every leaf
  recomputed from canonical JSON, hash chain, Merkle tree), against two floors:
  reading every row with ``sqlite3`` (I/O), and ``hashlib.sha256`` of the same
  canonical bytes plus the chain (hashing alone); canonical JSON encoding
  alone is reported too, since it is most of the cost;
* **query latency** (p50/p99, warm cache) of representative auditors' queries
  through :func:`iter_entries` (every matching row turned into a dict, all
  rows drained), against the same SQL (compiled from our query, literal
  values) run by ``sqlite3`` with ``fetchall``; the SQLite query plan is saved.
  Measured twice: on the fresh database (no planner statistics), then after
  ``ANALYZE``.

Results go to ``bench-out/audit-results.json``. Usage:
``python bench/bench_audit.py [--entries 1000000] [--keep]`` (``--keep`` reuses
a database already built with the same number of entries).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Engine, insert, select

from airlock.bundles.audit import (
    AUDIT_TABLE,
    COLUMNS,
    GENESIS,
    AuditLog,
    AuditQuery,
    AuditRecord,
    chain_hash,
    iter_entries,
    leaf_hash,
    verify_log,
)
from airlock.bundles.canonical import canonical_bytes
from airlock.bundles.db import create_tables, make_engine, session_scope

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-out" / "audit"
DB = WORK / "audit.db"
RESULTS = ROOT / "bench-out" / "audit-results.json"
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SLOT_US = 30_000_000  # one entry every ~30 s: 1M entries span ~347 days
CHUNK = 10_000
HASHED_COLUMNS = [c for c in COLUMNS if c not in ("leaf_hash", "chain_hash")]

ACTIONS = [  # (action, weight, kind)
    ("spoke.node.request", 12, "node"),
    ("spoke.rollout.tick", 4, "rollout"),
    ("spoke.rollout.ring-started", 8, "rollout"),
    ("spoke.rollout.promoted", 8, "rollout"),
    ("spoke.rollout.complete", 3, "rollout"),
    ("spoke.rollout.rolled-back", 1, "rollout"),
    ("spoke.rollout.pause", 1, "rollout"),
    ("spoke.site_director.publish", 10, "rollout"),
    ("spoke.node.refusal", 3, "node"),
    ("spoke.node.enroll", 2, "node"),
    ("spoke.import", 6, "bundle"),
    ("hub.export", 6, "bundle"),
    ("hub.assign", 5, "change"),
    ("hub.change.create", 2, "change"),
    ("hub.change.approve", 2, "change"),
    ("hub.model.import", 4, "model"),
    ("hub.revoke", 1, "change"),
    ("audit.checkpoint", 1, "plain"),
]
OUTCOMES = [("success", 85), ("failure", 7), ("refused", 5), ("unchanged", 3)]
PEOPLE = [f"user{n:02d}" for n in range(12)]
SERVICES = ["airlock-rollout-engine", "spoke-service", "airlock-hub"]


def make_entry(index: int, rng: random.Random) -> dict[str, Any]:
    """Entry ``index`` (0-based) of the synthetic log, as the columns ``record`` would fill."""
    action, kind = rng.choices([(a, k) for a, _, k in ACTIONS], [w for _, w, _ in ACTIONS])[0]
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    node = f"node-{rng.randrange(1000):04d}" if kind in ("node", "rollout") else ""
    if kind == "node":
        principal = f"node:{node}" if action != "spoke.node.enroll" else rng.choice(PEOPLE)
    else:
        principal = rng.choice(SERVICES) if kind == "rollout" else rng.choice(PEOPLE)
    has_model = kind in ("rollout", "bundle", "change", "model")
    when = T0 + dt.timedelta(microseconds=index * SLOT_US + rng.randrange(SLOT_US))
    return {
        "seq": index + 1,
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "time": when.isoformat(),
        "component": "hub" if action.startswith("hub.") else "spoke",
        "principal": principal,
        "action": action,
        "object": f"key-{rng.randrange(50)}" if kind == "plain" else "",
        "outcome": outcome,
        "site": f"site-{rng.randrange(20):02d}",
        "node": node,
        "host": "bench-host",
        "change_request": f"CHG{rng.randrange(3000):07d}"
        if kind in ("rollout", "change") and rng.random() < 0.8
        else "",
        "model": f"model-{rng.randrange(20):02d}" if has_model else "",
        "version": str(rng.randrange(1, 13)) if has_model else "",
        "bundle_id": f"b-{rng.randrange(5000):05d}" if kind == "bundle" else "",
        "rollout_id": f"ro-{rng.randrange(800):04d}" if kind == "rollout" else "",
        "reason": "health check failed" if outcome == "failure" else "",
        "details": json.dumps({"ring": rng.randrange(4), "samples": rng.randrange(10_000)}),
    }


def hashed_chunk(start: int) -> list[dict[str, Any]]:
    """Entries ``start``… of one chunk, each with its leaf hash (no chain yet)."""
    rng = random.Random(start)  # noqa: S311 - synthetic data, not security
    rows = []
    for index in range(start, start + CHUNK):
        row = make_entry(index, rng)
        entry = AuditRecord.entry(cast(AuditRecord, SimpleNamespace(**row)))
        row["leaf_hash"] = leaf_hash(entry)
        rows.append(row)
    return rows


def build(engine: Engine, entries: int) -> dict[str, Any]:
    """Fills the log with ``entries`` entries; returns how long it took."""
    create_tables(engine, [AuditRecord])
    starts = list(range(0, entries, CHUNK))
    head = GENESIS
    begin = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 2) as pool:
        for rows in pool.imap(hashed_chunk, starts):
            rows = rows[: entries - rows[0]["seq"] + 1]
            for row in rows:
                head = chain_hash(head, row["leaf_hash"])
                row["leaf_hash"] = row["leaf_hash"].hex()
                row["chain_hash"] = head.hex()
            with engine.begin() as connection:
                connection.execute(insert(AUDIT_TABLE), rows)
    seconds = time.perf_counter() - begin
    return {
        "entries": entries,
        "seconds": round(seconds, 1),
        "entries_per_s": round(entries / seconds),
    }


def raw_connection() -> sqlite3.Connection:
    """A stdlib sqlite3 connection with the same pragmas as :func:`make_engine`."""
    connection = sqlite3.connect(DB, isolation_level=None)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=30000", "synchronous=FULL"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def next_rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` valid, already-hashed entries continuing the log (hashed outside any timer)."""
    with raw_connection() as connection:
        seq, head = connection.execute(
            "SELECT seq, chain_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    rng = random.Random(seq)  # noqa: S311 - synthetic data, not security
    previous = bytes.fromhex(head)
    rows = []
    for index in range(seq, seq + count):
        row = make_entry(index, rng) | {"time": dt.datetime.now(dt.UTC).isoformat()}
        leaf = leaf_hash(AuditRecord.entry(cast(AuditRecord, SimpleNamespace(**row))))
        previous = chain_hash(previous, leaf)
        rows.append((*(row[c] for c in HASHED_COLUMNS), leaf.hex(), previous.hex()))
    return rows


def bench_append(engine: Engine) -> dict[str, Any]:
    """Entries/s through AuditLog.record, and plain sqlite3 INSERTs of the same shape."""
    log = AuditLog(engine, "spoke", site="site-00")
    batches, per_batch, singles = 20, 100, 300

    def record(i: int, session: Any = None) -> None:
        log.record(
            "spoke.rollout.promoted", "success", principal="airlock-rollout-engine",
            node=f"node-{i % 1000:04d}", model="model-01", version="3", rollout_id="ro-0001",
            change_request="CHG0000001", details={"ring": 1, "samples": i}, session=session,
        )  # fmt: skip

    begin = time.perf_counter()
    for b in range(batches):
        with session_scope(engine) as session:
            for i in range(per_batch):
                record(b * per_batch + i, session)
    ours_batched = batches * per_batch / (time.perf_counter() - begin)
    begin = time.perf_counter()
    for i in range(singles):
        record(i)
    ours_single = singles / (time.perf_counter() - begin)

    placeholders = ", ".join("?" * len(COLUMNS))
    sql = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    rows = next_rows(batches * per_batch)
    with raw_connection() as connection:
        begin = time.perf_counter()
        for b in range(batches):
            connection.execute("BEGIN IMMEDIATE")
            for row in rows[b * per_batch : (b + 1) * per_batch]:
                connection.execute(sql, row)
            connection.execute("COMMIT")
        ref_batched = batches * per_batch / (time.perf_counter() - begin)
    rows = next_rows(singles)
    with raw_connection() as connection:
        begin = time.perf_counter()
        for row in rows:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(sql, row)
            connection.execute("COMMIT")
        ref_single = singles / (time.perf_counter() - begin)
    return {
        "batched": {
            "what": f"{batches} transactions of {per_batch} entries",
            "airlock_entries_per_s": round(ours_batched),
            "sqlite3_insert_entries_per_s": round(ref_batched),
        },
        "single_commit": {
            "what": f"{singles} entries, one commit (fsync) each",
            "airlock_entries_per_s": round(ours_single),
            "sqlite3_insert_entries_per_s": round(ref_single),
        },
    }


def bench_verify(engine: Engine, sample: int = 100_000) -> dict[str, Any]:
    """verify_log over the whole log, against reading alone and hashing alone."""
    begin = time.perf_counter()
    report = verify_log(engine, None)
    seconds = time.perf_counter() - begin
    assert report.ok, report.problem
    with raw_connection() as connection:
        begin = time.perf_counter()
        scanned = len(connection.execute("SELECT * FROM audit_log ORDER BY seq").fetchall())
        read_rate = scanned / (time.perf_counter() - begin)
        rows = connection.execute(
            f"SELECT {', '.join(HASHED_COLUMNS)} FROM audit_log ORDER BY seq LIMIT {sample}"  # noqa: S608
        ).fetchall()
    entries = [
        AuditRecord.entry(
            cast(AuditRecord, SimpleNamespace(**dict(zip(HASHED_COLUMNS, r, strict=True))))
        )
        for r in rows
    ]
    begin = time.perf_counter()
    encoded = [canonical_bytes(entry) for entry in entries]
    encode_rate = len(entries) / (time.perf_counter() - begin)
    begin = time.perf_counter()
    head = GENESIS
    for data in encoded:
        head = hashlib.sha256(head + hashlib.sha256(b"\x00" + data).digest()).digest()
    hash_rate = len(encoded) / (time.perf_counter() - begin)
    return {
        "entries": report.entries,
        "seconds": round(seconds, 1),
        "airlock_verify_log_entries_per_s": round(report.entries / seconds),
        "floor_sqlite3_read_entries_per_s": round(read_rate),
        "floor_hashlib_sha256_entries_per_s": round(hash_rate),
        "canonical_json_encode_entries_per_s": round(encode_rate),
        "sample_for_floors": len(entries),
        "mean_canonical_bytes": round(sum(map(len, encoded)) / len(encoded)),
    }


QUERIES: dict[str, AuditQuery] = {
    "newest 100 by one person": AuditQuery(principal=("user03",), limit=100, newest_first=True),
    "one node's failures and refusals": AuditQuery(
        node=("node-0042",), outcome=("failure", "refused")
    ),
    "everything under one change request": AuditQuery(change_request=("CHG0001234",)),
    "model@version in one week": AuditQuery(
        model=("model-07",),
        version=("3",),
        since=T0 + dt.timedelta(days=140),
        until=T0 + dt.timedelta(days=147),
    ),
    "rollout actions (prefix) in one day": AuditQuery(
        action=("spoke.rollout.*",),
        since=T0 + dt.timedelta(days=200),
        until=T0 + dt.timedelta(days=201),
    ),
    "first 1000 of one month": AuditQuery(
        since=T0 + dt.timedelta(days=90), until=T0 + dt.timedelta(days=120), limit=1000
    ),
    "revocations that failed, whole year": AuditQuery(action=("hub.revoke",), outcome=("failure",)),
}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def timed(run: Callable[[], int], budget: float = 4.0, most: int = 50) -> tuple[list[float], int]:
    """Runs ``run`` (warm-up first) until ``most`` samples or ``budget`` seconds."""
    rows = run()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < most and (len(samples) < 5 or time.perf_counter() - start < budget):
        begin = time.perf_counter()
        run()
        samples.append((time.perf_counter() - begin) * 1000)
    return samples, rows


def bench_queries(engine: Engine) -> dict[str, Any]:
    """p50/p99 of each query, ours and plain sqlite3 on the same SQL."""
    results: dict[str, Any] = {}
    connection = raw_connection()
    columns = [AUDIT_TABLE.c[name] for name in COLUMNS]
    for name, query in QUERIES.items():
        seq = AUDIT_TABLE.c.seq
        statement = (
            select(*columns)
            .where(*query.where(engine))
            .order_by(seq.desc() if query.newest_first else seq)
            .limit(query.limit if query.limit is not None else -1)
        )
        sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))

        def ours_run(q: AuditQuery = query) -> int:
            return sum(1 for _ in iter_entries(engine, q))

        def plain_run(text: str = sql) -> int:
            return len(connection.execute(text).fetchall())

        ours, count = timed(ours_run)
        plain, plain_count = timed(plain_run)
        assert count == plain_count, (name, count, plain_count)
        plan = [row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + sql)]
        results[name] = {
            "rows": count,
            "airlock_ms": {
                "p50": round(percentile(ours, 0.5), 2),
                "p99": round(percentile(ours, 0.99), 2),
            },
            "sqlite3_ms": {
                "p50": round(percentile(plain, 0.5), 2),
                "p99": round(percentile(plain, 0.99), 2),
            },
            "samples": len(ours),
            "sql": sql.replace("\n", " "),
            "plan": plan,
        }
    connection.close()
    return results


def print_queries(results: dict[str, Any]) -> None:
    """One line per query: rows, our p50/p99, the reference's."""
    for name, result in results.items():
        print(f"  {name}: {result['rows']} rows, ours {result['airlock_ms']} ms, "
              f"sqlite3 {result['sqlite3_ms']} ms", flush=True)  # fmt: skip


def main() -> None:
    """Builds (or reuses) the log, runs the three measurements, writes the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="reuse a database of the same size")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    marker = WORK / "built.json"
    reuse = (
        args.keep and marker.exists() and json.loads(marker.read_text())["entries"] == args.entries
    )
    if not reuse:
        shutil.rmtree(WORK)
        WORK.mkdir(parents=True)
    engine = make_engine(f"sqlite:///{DB}")
    if reuse:
        built = json.loads(marker.read_text()) | {"reused": True}
    else:
        print(f"building a log of {args.entries:,} entries in {DB} …", flush=True)
        built = build(engine, args.entries)
        marker.write_text(json.dumps(built))
    print(f"  {built}", flush=True)
    with raw_connection() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print("verify …", flush=True)
    verify = bench_verify(engine)  # before appending: the built log alone
    print(f"  {verify}", flush=True)
    print("queries …", flush=True)
    queries = bench_queries(engine)
    print_queries(queries)
    print("queries after ANALYZE …", flush=True)
    with raw_connection() as connection:
        begin = time.perf_counter()
        connection.execute("ANALYZE")
        analyze_seconds = round(time.perf_counter() - begin, 1)
    analyzed = bench_queries(engine)
    print_queries(analyzed)
    print("append …", flush=True)
    append = bench_append(engine)
    print(f"  {append}", flush=True)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "database": {
            "file": str(DB.relative_to(ROOT)),
            "bytes": DB.stat().st_size,
            "pragmas": "WAL, synchronous=FULL",
        },
        "build": built,
        "append": append,
        "verify": verify,
        "query": queries,
        "query_after_analyze": {"analyze_seconds": analyze_seconds, "queries": analyzed},
        "notes": [
            "append: 'airlock' = AuditLog.record (reads the last entry, canonical JSON, "
            "leaf and chain hash, ORM insert); 'sqlite3' = the INSERT alone of an "
            "already-hashed row into the same table and indexes",
            "verify: verify_log without checkpoint keys (no checkpoints in this log); floors "
            f"measured on the first {verify['sample_for_floors']} entries",
            "query: all matching rows drained, warm page cache; 'sqlite3' runs the same SQL "
            "our query compiles to, in one fetchall, without building dicts",
            "query_after_analyze: the same after SQLite's ANALYZE (table statistics, which "
            "`PRAGMA optimize` keeps up to date): the planner then picks the most selective "
            "index; 'query' is a database that never had statistics",
        ],
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
