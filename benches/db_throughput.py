#!/usr/bin/env python3
"""Conversion throughput on SQLite and PostgreSQL, one and two daemons, measured side by side.

Direct milter-protocol load (benches/milter_load.rs, no MTA): 16 connections send distinct
4 KB messages to support@msp.example from a known contact; every message becomes a ticket,
durably committed before its answer. Configurations, alternated for several rounds:
  sqlite-1  one daemon on SQLite (WAL, flushed before each answer)
  pg-1      one daemon on a private PostgreSQL 15 cluster (fsync on, synchronous_commit on)
  pg-2      two daemons (two sockets, as two MX hosts) on the same PostgreSQL database,
            the load split between them
  pg-2-mirror  two daemons, every message sent to both at once with the same Message-ID
            (two MX hosts both accepting a retry): one ticket per message, one duplicate
The script prints messages/s and end-of-message latency per run, the medians, and checks that
each run made exactly one ticket per message.

Needs root (the private PostgreSQL runs as the user postgres), the postgresql package and
release builds:
  cargo build --release && cargo build --release --example milter-load
  python3 benches/db_throughput.py [--messages 2000] [--connections 16] [--rounds 3]
"""

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile

from benchlib import ROOT, TM, free_port, output as run, prepare_database, wait_port
LOAD = os.path.join(ROOT, "target/release/examples/milter-load")
CLUSTER = os.path.join(ROOT, "tests/pg-cluster")


def psql(server_url, sql, db="postgres"):
    url = server_url.rsplit("/", 1)[0] + "/" + db
    return run(["psql", "-X", "-q", "-t", "-A", url, "-c", sql]).strip()


class Daemons:
    def __init__(self, work, url, count):
        self.procs, self.ports = [], []
        for i in range(count):
            port = free_port()
            conf = os.path.join(work, "tm-%d.toml" % i)
            with open(conf, "w") as f:
                f.write('[database]\nurl = "%s"\n[milter]\nsocket = "inet:127.0.0.1:%d"\n'
                        '[notify]\nenabled = false\n[log]\nlevel = "warn"\n' % (url, port))
            log = open(os.path.join(work, "daemon-%d.log" % i), "w")
            self.procs.append(subprocess.Popen([TM, "--config", conf, "run"], stdout=log, stderr=log))
            self.ports.append(port)
        for p in self.ports:
            wait_port(p)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def one_run(kind, args, server_url, work, n):
    tag = "%s-%d" % (kind, n)
    if kind == "sqlite-1":
        path = os.path.join(work, "%s.db" % tag)
        url = "sqlite:" + path
    else:
        db = "bench_%s" % re.sub(r"[^a-z0-9]", "_", tag)
        psql(server_url, "CREATE DATABASE %s" % db)
        url = server_url.rsplit("/", 1)[0] + "/" + db
    prepare_database(url)
    daemons = Daemons(work, url, 1 if kind.endswith("-1") else 2)
    try:
        cmd = [LOAD, "--connections", str(args.connections), "--count", str(args.messages), "--tag", tag]
        for p in daemons.ports:
            cmd += ["--socket", "127.0.0.1:%d" % p]
        if kind.endswith("mirror"):
            cmd.append("--mirror")
        out = run(cmd).strip()
    finally:
        daemons.stop()
    fields = dict(kv.split("=") for kv in out.split())
    if kind == "sqlite-1":
        c = sqlite3.connect(path)
        tickets = c.execute("SELECT count(*) FROM tickets").fetchone()[0]
        c.close()
    else:
        tickets = int(psql(server_url, "SELECT count(*) FROM tickets", db))
    if tickets != args.messages:
        raise SystemExit("%s: %d tickets for %d messages" % (tag, tickets, args.messages))
    return float(fields["rate"]), float(fields["eom_ms_p50"]), float(fields["p99"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for b in (TM, LOAD):
        if not os.path.exists(b):
            raise SystemExit("%s is missing: cargo build --release && cargo build --release --example milter-load" % b)
    work = tempfile.mkdtemp(prefix="tm-dbbench-")
    os.chmod(work, 0o755)
    env = dict(os.environ, TICKETMILTER_PG_DIR=os.path.join(work, "pg"))
    server_url = run([CLUSTER, "start"], env=env).strip()
    kinds = ["sqlite-1", "pg-1", "pg-2", "pg-2-mirror"]
    results = {k: [] for k in kinds}
    try:
        for r in range(args.rounds):
            for k in kinds:
                rate, p50, p99 = one_run(k, args, server_url, work, r)
                results[k].append((rate, p50, p99))
                print("round %d %-12s %7.1f msg/s  eom p50 %5.1f ms  p99 %6.1f ms" % (r + 1, k, rate, p50, p99), flush=True)
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("medians over %d rounds (%d messages, %d connections):" % (args.rounds, args.messages, args.connections))
    base = statistics.median(x[0] for x in results["sqlite-1"])
    for k in kinds:
        rate = statistics.median(x[0] for x in results[k])
        print("%-12s %7.1f msg/s (%.2f x sqlite-1)  eom p50 %5.1f ms  p99 %6.1f ms" % (
            k, rate, rate / base, statistics.median(x[1] for x in results[k]), statistics.median(x[2] for x in results[k])))


if __name__ == "__main__":
    sys.exit(main())
