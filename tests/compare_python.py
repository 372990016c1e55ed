#!/usr/bin/env python3
"""Cross-check of ticketmilter's MIME decoding against Python's `email` package.

For every tests/corpus/*.eml this runs `ticketmilter process --dry-run` and compares three
things with what `email.message_from_bytes(raw, policy=email.policy.default)` makes of the
same bytes:

  title        the decoded Subject, whitespace (and control characters) collapsed;
               an empty subject matches our generated "New Ticket - <date>" title
  sender       the first address of From, else Sender, else Reply-To (empty addresses skipped)
  attachments  the attachment file names, in order (see `python_attachments`); a part
               without a name on Python's side matches the name we generate for it
               ("attachment-N.ext", "message-N.eml", "<subject>.eml" for a message)

Usage: compare_python.py --bin TICKETMILTER --database DB [CORPUS_DIR]
The database must be migrated and know the mailbox support@msp.example (the cargo test
python_compare.rs prepares one). Exit status 0 when everything matches or is allowlisted,
1 on differences (listed on stdout), 2 on usage or run errors.
"""

import argparse
import email
import email.policy
import json
import os
import re
import subprocess
import sys

RCPT = "support@msp.example"
INLINE_IMAGE_BYTES = 20480

# (file, field) pairs where the two parsers legitimately disagree: malformed or ambiguous input
# that has no single right reading. Keep this short and honest.
ALLOWED = {
    ("malformed-header-without-colon.eml", "title"):
        "a header line without a colon ends Python's header block (Subject lost); mail-parser skips the line",
    ("cpython-msg_15-reused-boundary-bad-base64.eml", "attachments"):
        "the nested multipart reuses the outer boundary; Python loses the xx.gif part, mail-parser recovers it",
    ("mailparser-dovecot-malformed-017-no-boundary-param.eml", "attachments"):
        "no ';' before boundary=: Python sees a multipart without boundary, mail-parser still splits the parts",
    ("cpython-msg_04-inline-text-filenames.eml", "attachments"):
        "inline text parts named only by Content-Disposition: mail-parser shows both as body text, "
        "Python's iter_attachments yields the second as an attachment",
    ("malformed-8bit-header-garbage.eml", "title"):
        "raw 8-bit (non-UTF-8) subject bytes: Python shows U+FFFD, the converter decodes them as "
        "windows-1252 (Grüße instead of Gr\ufffd\ufffde)",
    ("malformed-from-no-local-part.eml", "sender"):
        "From: \"Acme Billing\"@acme.example> : Python quotes the display name into a local part with a "
        "space; the converter takes no address from a From that is no one's mailbox (attributed by the "
        "next header, else the fallback company; no reply sent)",
    ("malformed-from-name-without-brackets.eml", "sender"):
        "From: Bernd Acme bernd@acme.example : Python makes '\"Bernd Acme bernd\"@acme.example' of it; "
        "the converter passes over a From that is no mailbox and takes the Sender header",
}

# Differences where the converter is wrong (reported as bugs). Listed so that the test guards
# everything else; an entry that stops differing fails the test, so remove it with the fix.
KNOWN_BUGS = {}

NEW_TICKET_TITLE = re.compile(r"^New Ticket - \d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
def collapse(s):
    """Collapse whitespace and control characters to single spaces, as the converter does."""
    if s is None:
        return ""
    s = fix_surrogates(s)
    words = re.split(r"[\s\x00-\x1f\x7f-\x9f]+", s)
    return " ".join(w for w in words if w)


def fix_surrogates(s):
    """Undecodable bytes come back from `email` as lone surrogates; we show them as U+FFFD."""
    return re.sub("[\udc80-\udcff]", "\ufffd", s)


def sanitize_filename(name):
    """The converter's documented file-name clean-up: last path component, control
    characters as spaces, whitespace collapsed, no leading/trailing dots, at most 255 characters."""
    base = re.split(r"[/\\]", name)[-1]
    base = collapse("".join(" " if is_control(c) else c for c in base))
    return base.strip(".")[:255]


def is_control(c):
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def header_str(msg, name):
    try:
        v = msg[name]
    except Exception as e:  # a header Python cannot parse at all
        return "<python error: %s>" % e
    return None if v is None else str(v)


def python_title(msg):
    return collapse(header_str(msg, "subject"))


def first_addr(msg, name):
    try:
        h = msg[name]
    except Exception:
        return None
    if h is None:
        return None
    for a in getattr(h, "addresses", ()):
        spec = a.addr_spec.strip().strip("<>").strip()
        if spec and spec != "<>":
            return fix_surrogates(spec)
    return None


def python_sender(msg):
    for name in ("from", "sender", "reply-to"):
        a = first_addr(msg, name)
        if a:
            return a
    return None


def is_body_text(part):
    """A nameless text/plain or text/html part that is not marked as an attachment is body
    text for every mail reader, wherever it sits."""
    return (part.get_content_type() in ("text/plain", "text/html")
            and not part.is_attachment()
            and part.get_filename() is None)


def python_attachments(part):
    """Attachments as Python's `iter_attachments` sees them, recursively: multipart children
    it yields are descended into, multipart children it keeps as body (alternative, related)
    are searched for their own attachments (inline images of a related part)."""
    if part.get_content_maintype() != "multipart":
        return []
    out = []
    yielded = []
    for sub in part.iter_attachments():
        yielded.append(id(sub))
        if sub.get_content_maintype() == "multipart":
            out.extend(python_attachments(sub))
        elif not is_body_text(sub):
            out.append(sub)
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if id(sub) not in yielded and sub.get_content_maintype() == "multipart":
                out.extend(python_attachments(sub))
    # keep document order
    order = {id(p): i for i, p in enumerate(part.walk())}
    out.sort(key=lambda p: order.get(id(p), 0))
    return out


def python_attachment_names(msg):
    if msg.get_content_type() == "message/rfc822":
        # The whole body is an enclosed message: that message is the one attachment.
        parts = [msg.get_payload(0)] if msg.is_multipart() else [msg]
        return [None for _ in parts]
    # Small inline images that the HTML shows (cid:) stay inside the HTML instead of becoming
    # files (the mailbox's inline_image_bytes, 20 KB by default): leave them out here too.
    html = ""
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            try:
                html += part.get_content()
            except Exception:
                pass
    names = []
    for p in python_attachments(msg):
        cid = (p.get("Content-ID") or "").strip().strip("<>").strip()
        if cid and p.get_content_maintype() == "image" and ("cid:" + cid) in html:
            payload = p.get_payload(decode=True) or b""
            if len(payload) <= INLINE_IMAGE_BYTES:
                continue
        n = p.get_filename()
        names.append(None if n is None else sanitize_filename(n) or None)
    return names


def names_match(ours, theirs):
    if len(ours) != len(theirs):
        return False
    for (o_name, o_type), t in zip(ours, theirs):
        if t is None:
            # A nameless part: the converter names it (Content-Description, the enclosed subject,
            # or attachment-N.ext); only its presence is compared.
            continue
        elif o_name != t:
            return False
    return True


def run_ours(binary, database, path):
    p = subprocess.run(
        [binary, "--database", database, "process", "--dry-run", "--rcpt", RCPT, path],
        capture_output=True,
    )
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (path, p.returncode, p.stderr.decode("utf-8", "replace")))
    lines = [l for l in p.stdout.decode("utf-8").splitlines() if l.strip()]
    if len(lines) != 1:
        raise RuntimeError("%s: expected one outcome, got %d" % (path, len(lines)))
    return json.loads(lines[0])


def compare(binary, database, path):
    """Returns [(field, ours, python)] of the differences for one message."""
    ours = run_ours(binary, database, path)
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    diffs = []

    o_title = collapse(ours.get("title"))
    p_title = python_title(msg)
    if not (o_title == p_title or (p_title == "" and NEW_TICKET_TITLE.match(o_title))):
        diffs.append(("title", o_title, p_title))

    o_sender = (ours.get("sender") or {}).get("address")
    p_sender = python_sender(msg)
    if o_sender != p_sender:
        diffs.append(("sender", o_sender, p_sender))

    o_atts = [(a["filename"], a["content_type"]) for a in ours.get("attachments", [])]
    p_atts = python_attachment_names(msg)
    if not names_match(o_atts, p_atts):
        diffs.append(("attachments", [n for n, _ in o_atts], p_atts))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the ticketmilter binary")
    ap.add_argument("--database", required=True, help="database URL with mailbox %s" % RCPT)
    ap.add_argument("corpus", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    args = ap.parse_args()

    files = sorted(f for f in os.listdir(args.corpus) if f.endswith(".eml"))
    if not files:
        print("no .eml files in %s" % args.corpus)
        return 2
    failures, allowed_hits = [], set()
    for name in files:
        try:
            diffs = compare(args.bin, args.database, os.path.join(args.corpus, name))
        except Exception as e:
            failures.append("%s: error: %s" % (name, e))
            continue
        for field, o, p in diffs:
            key = (name, field)
            if key in ALLOWED or key in KNOWN_BUGS:
                allowed_hits.add(key)
                label = "allowed  " if key in ALLOWED else "KNOWN BUG"
                why = ALLOWED.get(key) or KNOWN_BUGS[key]
                print("%s %s %s: ours=%r python=%r (%s)" % (label, name, field, o, p, why))
            else:
                failures.append("%s %s:\n    ours   = %r\n    python = %r" % (name, field, o, p))
    for name, field in sorted((set(ALLOWED) | set(KNOWN_BUGS)) - allowed_hits):
        where = "ALLOWED" if (name, field) in ALLOWED else "KNOWN_BUGS"
        failures.append("%s %s: listed in %s but no longer differs; remove the entry" % (name, field, where))
    print("compared %d messages with Python %s" % (len(files), sys.version.split()[0]))
    if failures:
        print("%d difference(s):" % len(failures))
        for f in failures:
            print("DIFF " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
