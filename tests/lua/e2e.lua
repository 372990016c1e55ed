-- End-to-end run of the ticketmilter binary with Debian's miltertest.
-- Globals from the command line: port (the milter's TCP port on 127.0.0.1), run (a tag that
-- keeps Message-IDs and queue ids of repeated runs against one database apart).
-- miltertest prints no Lua error text, so every step echoes a checkpoint and every failure
-- echoes "FAIL: <what>" before it stops the script with exit code 1.

-- check, step, reply_is and the steps the milter may skip: tests/lua/common.lua.
dofile(common)

function open(what)
	local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 40, 0.25)
	check(conn ~= nil, what .. ": connect to inet:" .. port .. "@127.0.0.1")
	connect_step(conn, what, "192.0.2.25")
	return conn
end

-- Envelope and DATA; returns the reply to DATA.
function envelope(conn, what, qid, from, rcpts)
	step(mt.macro(conn, SMFIC_MAIL, "i", qid), what .. ": macro i")
	step(mt.mailfrom(conn, from), what .. ": mail from")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": mail from")
	for _, r in ipairs(rcpts) do
		step(mt.rcptto(conn, r), what .. ": rcpt " .. r)
		reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": rcpt " .. r)
	end
	return data_step(conn, what)
end

-- Header fields, end of header, body, end of message; returns the reply to end of message.
function content(conn, what, headers, body)
	for _, h in ipairs(headers) do
		step(mt.header(conn, h[1], h[2]), what .. ": header " .. h[1])
	end
	eoh_step(conn, what)
	step(mt.bodystring(conn, body), what .. ": body")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": body")
	step(mt.eom(conn), what .. ": eom")
	return mt.getreply(conn)
end

function main()
mt.set_timeout(30)
mt.echo("checkpoint: start, port " .. tostring(port))

-- 1. A message to support@: converted, accepted, X-Ticketmilter added.
local what = "support"
local conn = open(what)
check(mt.test_action(conn, SMFIF_ADDHDRS), what .. ": milter asked to add headers")
check(mt.test_action(conn, SMFIF_DELRCPT), what .. ": milter asked to delete recipients")
local r = envelope(conn, what, "E2E" .. run .. "Q1", "<alice@example.com>", {"<support@msp.example>"})
check(r == SMFIR_CONTINUE, what .. ": data continues (got " .. tostring(r) .. ")")
r = content(conn, what, {
	{"From", "Alice Example <alice@example.com>"},
	{"To", "support@msp.example"},
	{"Subject", "Drucker im 2. OG druckt leer"},
	{"Message-ID", "<e2e-support-1-" .. run .. "@example.com>"},
}, "Hallo,\r\nder Drucker druckt nur leere Seiten.\r\n")
check(r == SMFIR_ACCEPT, what .. ": eom accept (got " .. tostring(r) .. ")")
check(mt.eom_check(conn, MT_HDRADD, "X-Ticketmilter"), what .. ": X-Ticketmilter added")
local v = mt.getheader(conn, "X-Ticketmilter", 0)
mt.echo("checkpoint: header X-Ticketmilter: " .. tostring(v))
check(v ~= nil and string.match(v, "^ ?support@msp%.example created T%d%d%d%d%d%d%d%d%.%d%d%d%d$") ~= nil,
	what .. ": header names the new ticket")
check(not mt.eom_check(conn, MT_RCPTDELETE, "<support@msp.example>"), what .. ": support@ not deleted")

-- 2. Same connection: unrelated recipients only; accepted at the first step after the
-- envelope (DATA, or the first header when DATA is skipped), nothing else read.
what = "unrelated"
r = envelope(conn, what, "E2E" .. run .. "Q2", "<alice@example.com>", {"<bob@elsewhere.example>", "<old@msp.example>"})
if r == SMFIR_CONTINUE and mt.test_option(conn, SMFIP_NODATA) then
	step(mt.header(conn, "From", "Alice Example <alice@example.com>"), what .. ": header From")
	r = mt.getreply(conn)
end
check(r == SMFIR_ACCEPT, what .. ": accepted before the body (got " .. tostring(r) .. ")")

-- 3. Same connection: the first message again is a duplicate of the same ticket.
what = "duplicate"
r = envelope(conn, what, "E2E" .. run .. "Q3", "<alice@example.com>", {"<support@msp.example>"})
check(r == SMFIR_CONTINUE, what .. ": data continues")
r = content(conn, what, {
	{"From", "Alice Example <alice@example.com>"},
	{"Subject", "Drucker im 2. OG druckt leer"},
	{"Message-ID", "<e2e-support-1-" .. run .. "@example.com>"},
}, "Hallo,\r\nder Drucker druckt nur leere Seiten.\r\n")
check(r == SMFIR_ACCEPT, what .. ": eom accept")
local dup = mt.getheader(conn, "X-Ticketmilter", 0)
mt.echo("checkpoint: header X-Ticketmilter: " .. tostring(dup))
check(dup ~= nil and dup == string.gsub(v, " created ", " duplicate "), what .. ": header names the same ticket")
mt.disconnect(conn)

-- 4. An unknown sender alone at alerts@ is rejected with 550 5.7.1 and the reason.
what = "alerts"
conn = open(what)
r = envelope(conn, what, "E2E" .. run .. "Q4", "<noreply@monitor.unknown.example>", {"<alerts@msp.example>"})
check(r == SMFIR_CONTINUE, what .. ": data continues")
r = content(conn, what, {
	{"From", "Monitor <noreply@monitor.unknown.example>"},
	{"Subject", "[ALERT] Disk C: on SRV-DC01 below 5%"},
	{"Message-ID", "<e2e-alert-1-" .. run .. "@monitor.unknown.example>"},
}, "Disk almost full.\r\n")
check(r == SMFIR_REPLYCODE, what .. ": eom reply code (got " .. tostring(r) .. ")")
-- (miltertest compares the whole reply: code, enhanced code and text together.)
check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
	"sender noreply@monitor.unknown.example is not a known contact or resource, and mailbox alerts@msp.example does not take mail from unknown senders"),
	what .. ": 550 5.7.1 with the reason")
check(not mt.eom_check(conn, MT_HDRADD), what .. ": no header added")

-- 5. Same connection after the rejection: unknown sender at alerts@ plus another recipient
--    is accepted; only the alerts@ copy is deleted.
what = "alerts+bob"
r = envelope(conn, what, "E2E" .. run .. "Q5", "<noreply@monitor.unknown.example>", {"<alerts@msp.example>", "<bob@elsewhere.example>"})
check(r == SMFIR_CONTINUE, what .. ": data continues")
r = content(conn, what, {
	{"From", "noreply@monitor.unknown.example"},
	{"Subject", "[ALERT] again"},
	{"Message-ID", "<e2e-alert-2-" .. run .. "@monitor.unknown.example>"},
}, "Disk almost full.\r\n")
check(r == SMFIR_ACCEPT, what .. ": eom accept (got " .. tostring(r) .. ")")
check(mt.eom_check(conn, MT_RCPTDELETE, "<alerts@msp.example>"), what .. ": alerts@ deleted")
check(not mt.eom_check(conn, MT_RCPTDELETE, "<bob@elsewhere.example>"), what .. ": bob@ kept")
mt.disconnect(conn)

-- 6. The milter still answers: a new connection, a new message.
what = "still answering"
conn = open(what)
r = envelope(conn, what, "E2E" .. run .. "Q6", "<tina@msp.example>", {"<support@msp.example>"})
check(r == SMFIR_CONTINUE, what .. ": data continues")
r = content(conn, what, {
	{"From", "Tina Tech <tina@msp.example>"},
	{"Subject", "Re: [T20261120.0001] VPN drops every hour"},
	{"Message-ID", "<e2e-note-1-" .. run .. "@msp.example>"},
}, "Restarted the VPN gateway.\r\n")
check(r == SMFIR_ACCEPT, what .. ": eom accept")
v = mt.getheader(conn, "X-Ticketmilter", 0)
mt.echo("checkpoint: header X-Ticketmilter: " .. tostring(v))
check(v == " support@msp.example note_added T20261120.0001" or v == "support@msp.example note_added T20261120.0001", what .. ": note added to T20261120.0001")
mt.disconnect(conn)

mt.echo("checkpoint: done")
end

-- Run under pcall so that a Lua error (a typo, a failing mt.* call) is printed, not swallowed.
local ok, err = pcall(main)
if not ok then
	mt.echo("FAIL: script stopped: " .. tostring(err))
	error(err)
end
