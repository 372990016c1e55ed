#!/usr/bin/env python3
"""Postfix throughput with and without milters, measured side by side.

Three private Postfix instances on 127.0.0.1 relay to one smtp-sink:
  (a) no milter, (b) the no-op milter (benches/noop_milter.rs: same protocol handling as
  ticketmilter, takes the whole message, accepts), (c) ticketmilter converting every message
  into a ticket on SQLite (each message durably committed before its answer), with the example
  configuration: by default without its acknowledgement and round-robin rule, as in
  benches/load_targets.py (--config conversion), or whole (--config example: every ticket is
  also acknowledged by mail and assigned by the rule).
smtp-source sends the same load to each in turn for several rounds, each round starting with
the next setup (a/b/c, b/c/a, c/a/b, …: use a multiple of 3 rounds, 4 with --compare); the
script prints messages/s per run, the medians, and the ratios b/a and c/b, and checks that (c)
made exactly one ticket per message.

Needs root (private Postfix), postfix (smtp-source, smtp-sink) and release builds:
  cargo build --release && cargo build --release --example noop-milter
  python3 benches/postfix_throughput.py [--messages 2000] [--sessions 16] [--size 4096] [--rounds 3]
                                        [--config conversion|example] [--compare OTHER_TICKETMILTER_BINARY]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import CONVERSION_ONLY, ROOT, free_port, wait_port
TM = os.environ.get("TICKETMILTER_BIN", os.path.join(ROOT, "target/release/ticketmilter"))
NOOP = os.path.join(ROOT, "target/release/examples/noop-milter")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, timeout=kw.pop("timeout", 60), **kw)


class Postfix:
    def __init__(self, base, name, smtpd_port, sink_port, milter):
        self.dir = os.path.join(base, name)
        self.port = smtpd_port
        for sub in ("", "queue", "data"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        main = [
            "compatibility_level = 3.6",
            "queue_directory = %s/queue" % self.dir,
            "data_directory = %s/data" % self.dir,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "myhostname = %s.bench.invalid" % name,
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "relayhost = [127.0.0.1]:%d" % sink_port,
            "maillog_file = %s/maillog" % self.dir,
            "maillog_file_prefixes = /var, /dev/stdout, %s" % self.dir,
            "smtpd_recipient_restrictions = permit_mynetworks, reject",
            "smtp_host_lookup = native",
            "disable_dns_lookups = yes",
            "default_process_limit = 100",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0",
            "in_flow_delay = 0",
            "milter_default_action = tempfail",
        ]
        if milter:
            main.append("smtpd_milters = inet:127.0.0.1:%d" % milter)
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write("\n".join(main) + "\n")
        master = open("/etc/postfix/master.cf").read().splitlines()
        out = ["127.0.0.1:%d inet n - n - - smtpd" % smtpd_port]
        for line in master:
            if line.startswith("smtp ") and " inet " in line:
                continue  # the system's port 25 listener
            fields = line.split()
            if len(fields) >= 8 and not line.startswith((" ", "\t", "#")):
                fields[4] = "n"  # no chroot
                line = " ".join(fields)
            out.append(line)
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        run(["postfix", "-c", self.dir, "check"])
        run(["postfix", "-c", self.dir, "start"])
        wait_port(smtpd_port)

    def stop(self):
        subprocess.run(["postfix", "-c", self.dir, "stop"], timeout=60, capture_output=True)

    def queue_empty(self, secs=120):
        deadline = time.time() + secs
        while time.time() < deadline:
            out = subprocess.run(["postqueue", "-c", self.dir, "-p"], capture_output=True, text=True, timeout=30).stdout
            if "Mail queue is empty" in out:
                return True
            time.sleep(0.2)
        return False


def source(port, messages, sessions, size):
    t0 = time.monotonic()
    p = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
         "-f", "alice@example.com", "-t", "support@msp.example", "127.0.0.1:%d" % port],
        capture_output=True, text=True, timeout=900)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("smtp-source failed: %s %s" % (p.stdout, p.stderr))
    return messages / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--config", choices=("conversion", "example"), default="conversion",
                    help="conversion (default): conf/example.sql without the acknowledgement and the "
                         "round-robin rule; example: all of conf/example.sql")
    ap.add_argument("--compare", metavar="BINARY",
                    help="also run (d): another ticketmilter build (e.g. of an older revision) in each round, "
                         "right after (c), for a side-by-side comparison")
    args = ap.parse_args()
    for b in (TM, NOOP):
        if not os.path.exists(b):
            raise SystemExit("%s is missing: cargo build --release && cargo build --release --example noop-milter" % b)
    for tool in ("postfix", "smtp-source", "smtp-sink"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s is missing: apt-get install postfix" % tool)

    base = tempfile.mkdtemp(prefix="tm-bench-pf-")
    os.chmod(base, 0o755)
    procs, instances = [], []
    try:
        sink_port = free_port()
        procs.append(subprocess.Popen(["smtp-sink", "-u", "postfix", "-c", "127.0.0.1:%d" % sink_port, "1000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(sink_port)
        noop_port = free_port()
        procs.append(subprocess.Popen([NOOP, "inet:127.0.0.1:%d" % noop_port, "--add-header"], stderr=subprocess.DEVNULL))
        wait_port(noop_port)
        def start_ticketmilter(binary, tag):
            db = os.path.join(base, "%s.db" % tag)
            cfg = os.path.join(base, "%s.toml" % tag)
            with open(cfg, "w") as f:
                f.write("[log]\nlevel = \"%s\"\n" % os.environ.get("TM_LOG", "warn"))
            run([binary, "--config", cfg, "--database", db, "load", os.path.join(ROOT, "conf/example.sql")], capture_output=True)
            # smtp-source sends the same sender and subject every time: without this, every message
            # after the first would be a duplicate (appended as a note) or held by the loop guard.
            # Each message is to become its own ticket.
            for key, value in (("duplicate_criteria", "none"), ("loop_max", "0")):
                run([binary, "--config", cfg, "--database", db, "setting", "set", key, value], capture_output=True)
            if args.config == "conversion":
                for command in CONVERSION_ONLY:
                    run([binary, "--config", cfg, "--database", db] + list(command), capture_output=True)
            port = free_port()
            procs.append(subprocess.Popen([binary, "--config", cfg, "--database", db, "run", "--socket", "inet:127.0.0.1:%d" % port],
                                          stderr=open(os.path.join(base, "%s.log" % tag), "w")))
            wait_port(port)
            return (binary, cfg, db, procs[-1], port)

        tms = {"c: ticketmilter": start_ticketmilter(TM, "tm")}
        setups = [("a: no milter", None), ("b: no-op milter", noop_port), ("c: ticketmilter", tms["c: ticketmilter"][4])]
        if args.compare:
            tms["d: compared"] = start_ticketmilter(args.compare, "tm-compared")
            setups.append(("d: compared", tms["d: compared"][4]))
        for i, (name, milter) in enumerate(setups):
            instances.append((name, Postfix(base, "pf%d" % i, free_port(), sink_port, milter)))

        if os.environ.get("PROFILE_TM"):
            open(os.environ["PROFILE_TM"], "w").write(str(tms["c: ticketmilter"][3].pid))
        # Warm-up (process start-up, caches), not measured.
        for name, pf in instances:
            source(pf.port, 100, args.sessions, args.size)
            pf.queue_empty()
        rates = {name: [] for name, _ in instances}
        for r in range(args.rounds):
            # Each round starts with the next setup, so that none always runs first or last, and
            # each run starts with nothing left to write back from the one before (the previous
            # run's queue files and database pages are flushed first, untimed).
            k = r % len(instances)
            for name, pf in instances[k:] + instances[:k]:
                os.sync()
                rate = source(pf.port, args.messages, args.sessions, args.size)
                rates[name].append(rate)
                print("round %d  %-16s %8.1f msg/s" % (r + 1, name, rate), flush=True)
                if not pf.queue_empty():
                    print("warning: %s did not empty its queue in time" % name)
        med = {n: statistics.median(v) for n, v in rates.items()}
        print()
        print("messages %d x %d rounds, %d sessions, %d-byte bodies, configuration: %s"
              % (args.messages, args.rounds, args.sessions, args.size, args.config))
        for n, m in med.items():
            print("median %-16s %8.1f msg/s   (runs: %s)" % (n, m, ", ".join("%.1f" % x for x in rates[n])))
        a, b, c = (med[n] for n, _ in setups[:3])
        print("ratio b/a (protocol cost)          %.2f" % (b / a))
        print("ratio c/b (conversion vs no-op)    %.2f" % (c / b))
        # Each round's (b) and (c) run within a minute of each other; their ratio is less exposed
        # to the machine's drift over the whole run than the ratio of the medians.
        def per_round(x, y):
            r = [ry / rx for rx, ry in zip(rates[x], rates[y])]
            return "%s (median %.2f)" % (", ".join("%.2f" % v for v in r), statistics.median(r))
        print("ratio c/b per round                %s" % per_round(setups[1][0], setups[2][0]))
        print("ratio c/a                          %.2f" % (c / a))
        if args.compare:
            d = med["d: compared"]
            print("ratio d/b                          %.2f   (d: %s)" % (d / b, args.compare))
            print("ratio d/b per round                %s" % per_round(setups[1][0], "d: compared"))
            print("ratio c/d per round                %s" % per_round("d: compared", setups[2][0]))
        tick = os.sysconf("SC_CLK_TCK")
        def cpu_seconds(pid):
            fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            return int(fields[11]) / tick, int(fields[12]) / tick
        total = 100 + args.messages * args.rounds
        for label, proc in [("no-op milter", procs[1])] + [(n[3:], t[3]) for n, t in tms.items()]:
            user, system = cpu_seconds(proc.pid)
            print("CPU of the %s: %.1f s, %.2f ms per message (user %.2f, system %.2f)"
                  % (label, user + system, (user + system) * 1000 / total, user * 1000 / total, system * 1000 / total))
        expected = (100 + args.messages * args.rounds)
        mismatch = False
        for name, (binary, cfg, db, _, _) in tms.items():
            out = subprocess.run([binary, "--config", cfg, "--database", db, "ticket", "list", "--limit", "1000000"],
                                 capture_output=True, text=True, timeout=120).stdout
            tickets = max(0, len(out.splitlines()) - 1)
            mismatch |= tickets != expected
            print("tickets made by (%s): %d for %d messages%s" % (name[0], tickets, expected, "" if tickets == expected else "  <-- MISMATCH"))
        if mismatch:
            sys.exit(1)
    finally:
        for _, pf in instances:
            pf.stop()
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
