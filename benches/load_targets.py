#!/usr/bin/env python3
"""The milter's own throughput, latency and memory, against the no-op milter, side by side.

Direct milter-protocol load from benches/milter_load.rs (no MTA, the load generator on the same
cores) against ticketmilter on SQLite (WAL, the WAL flushed after each commit: each message durable
before its answer) and against the no-op milter (benches/noop_milter.rs: the same protocol
handling, takes the whole message, adds a header, accepts). Per round, alternating:
  closed loop   16 and 32 connections, 4 KB messages, every message a new ticket;
                16 connections with the message mix (--mix: attachments, replies, unrelated
                recipients); each ticketmilter run verified against the database
  open loop     --rate 1000 msg/s with 32 connections: end-of-message p99
  memory        100 connections: peak RSS (VmHWM) of each daemon
Prints each run, then medians and the ratios ticketmilter / no-op.

  cargo build --release --all-targets
  python3 benches/load_targets.py [--messages 3000] [--rounds 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import ROOT, TM, free_port, output, prepare_database, wait_port

NOOP = os.path.join(ROOT, "target/release/examples/noop-milter")
LOAD = os.path.join(ROOT, "target/release/examples/milter-load")


def hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Daemon:
    """ticketmilter on a fresh SQLite database, or the no-op milter."""

    def __init__(self, kind, work, tag):
        self.port = free_port()
        self.url = None
        log = open(os.path.join(work, "%s.log" % tag), "w")
        if kind == "noop":
            cmd = [NOOP, "inet:127.0.0.1:%d" % self.port, "--add-header"]
        else:
            self.url = "sqlite:" + os.path.join(work, "%s.db" % tag)
            prepare_database(self.url)
            conf = os.path.join(work, "%s.toml" % tag)
            with open(conf, "w") as f:
                f.write('[database]\nurl = "%s"\n[milter]\nsocket = "inet:127.0.0.1:%d"\n'
                        '[notify]\nenabled = false\n[log]\nlevel = "warn"\n' % (self.url, self.port))
            cmd = [TM, "--config", conf, "run"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(daemon, tag, connections, count, extra=()):
    cmd = [LOAD, "--socket", "127.0.0.1:%d" % daemon.port, "--connections", str(connections),
           "--count", str(count), "--tag", tag] + list(extra)
    if daemon.url and "--verify" not in extra:
        cmd += ["--verify", daemon.url]
    out = output(cmd, timeout=900).strip()
    fields = dict(kv.split("=", 1) for kv in out.split())
    if daemon.url and fields.get("verified") != "ok":
        raise SystemExit("%s: not verified: %s" % (tag, out))
    return fields


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sustained", type=int, default=0, metavar="N",
                    help="messages of the open-loop run at 1,000 msg/s (default: --messages); "
                         "10000 sustains the rate long enough for several WAL restarts")
    args = ap.parse_args()
    for b in (TM, NOOP, LOAD):
        if not os.path.exists(b):
            raise SystemExit("%s is missing: cargo build --release --all-targets" % b)
    work = tempfile.mkdtemp(prefix="tm-load-")
    results = {}

    def note(key, value):
        results.setdefault(key, []).append(value)

    try:
        for r in range(args.rounds):
            for kind in ("noop", "tm"):
                for conns, mix in ((16, False), (32, False), (16, True)):
                    tag = "r%d-%s-%d%s" % (r, kind, conns, "-mix" if mix else "")
                    d = Daemon(kind, work, tag)
                    try:
                        f = load(d, tag, conns, args.messages, ["--mix"] if mix else [])
                    finally:
                        d.stop()
                    key = "%s closed %d conns%s" % (kind, conns, " mix" if mix else "")
                    note(key, (float(f["rate"]), float(f["eom_ms_p50"]), float(f["p99"])))
                    print("round %d %-28s %7.1f msg/s  eom p50 %5.1f ms  p99 %6.1f ms" % (
                        r + 1, key, float(f["rate"]), float(f["eom_ms_p50"]), float(f["p99"])), flush=True)
                tag = "r%d-%s-open" % (r, kind)
                d = Daemon(kind, work, tag)
                try:
                    load(d, tag + "-warm", 32, 300)
                    f = load(d, tag, 32, args.sustained or args.messages, ["--rate", "1000"])
                finally:
                    d.stop()
                key = "%s open 1000/s" % kind
                note(key, (float(f["rate"]), float(f["eom_ms_p50"]), float(f["p99"])))
                print("round %d %-28s %7.1f msg/s  eom p50 %5.1f ms  p99 %6.1f ms" % (
                    r + 1, key, float(f["rate"]), float(f["eom_ms_p50"]), float(f["p99"])), flush=True)
                tag = "r%d-%s-rss" % (r, kind)
                d = Daemon(kind, work, tag)
                try:
                    f = load(d, tag, 100, args.messages)
                    mb = hwm_mb(d.proc.pid)
                finally:
                    d.stop()
                note("%s rss 100 conns" % kind, mb)
                print("round %d %-28s peak RSS %.1f MB (%s msg/s)" % (r + 1, kind + " 100 conns", mb, f["rate"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("medians over %d rounds, %d messages per run:" % (args.rounds, args.messages))
    for key in sorted(results):
        v = results[key]
        if "rss" in key:
            print("%-30s peak RSS %.1f MB" % (key, statistics.median(v)))
        else:
            print("%-30s %7.1f msg/s  eom p50 %5.1f ms  p99 %6.1f ms" % (
                key, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                statistics.median(x[2] for x in v)))
    for shape in ("closed 16 conns", "closed 32 conns", "closed 16 conns mix"):
        tm = statistics.median(x[0] for x in results["tm " + shape])
        noop = statistics.median(x[0] for x in results["noop " + shape])
        print("ratio ticketmilter / no-op, %-20s %.2f" % (shape, tm / noop))


if __name__ == "__main__":
    sys.exit(main())
