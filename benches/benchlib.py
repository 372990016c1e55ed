"""Helpers shared by the benchmark drivers in benches/: free loopback ports, waiting for a
listener, running a command for its output, and a database ready for a load run."""

import os
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TM = os.environ.get("TICKETMILTER_BIN", os.path.join(ROOT, "target/release/ticketmilter"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on 127.0.0.1:%d after %d s" % (port, secs))


def output(cmd, timeout=600, **kw):
    """Run `cmd`; its standard output, or exit with both outputs when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


# What turns the example configuration into conversion alone: no acknowledgement by mail, no
# round-robin rule (the commands' arguments after the database).
CONVERSION_ONLY = (("template", "disable", "acknowledgement"), ("rule", "disable", "1"))


def prepare_database(url):
    """The example configuration, without acknowledgements and the round-robin rule: a load
    run measures conversion."""
    output([TM, "--database", url, "load", os.path.join(ROOT, "conf/example.sql")])
    for command in CONVERSION_ONLY:
        output([TM, "--database", url] + list(command))
