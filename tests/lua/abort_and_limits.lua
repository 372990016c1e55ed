-- ticketmilter with miltertest: an aborted transaction, a body over max_message_size and a
-- body with NUL bytes, each followed by a good message on the same connection.
-- Globals from the command line: port; limit (max_message_size of the daemon, in bytes).
-- Every step echoes a checkpoint; a failure echoes "FAIL: <what>" (miltertest itself prints
-- no Lua error text).

-- check, step, reply_is and the steps the milter may skip: tests/lua/common.lua.
dofile(common)

-- Envelope, header fields and end of header for a message to support@.
function start(conn, what, qid, msgid)
	step(mt.macro(conn, SMFIC_MAIL, "i", qid), what .. ": macro i")
	step(mt.mailfrom(conn, "<alice@example.com>"), what .. ": mail from")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": mail from")
	step(mt.rcptto(conn, "<support@msp.example>"), what .. ": rcpt")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": rcpt")
	check(data_step(conn, what) == SMFIR_CONTINUE, what .. ": data continues")
	step(mt.header(conn, "From", "Alice Example <alice@example.com>"), what .. ": header From")
	step(mt.header(conn, "Subject", what), what .. ": header Subject")
	step(mt.header(conn, "Message-ID", "<" .. msgid .. ">"), what .. ": header Message-ID")
	eoh_step(conn, what)
end

-- A complete good message; checks that it is converted.
function good(conn, what, qid, msgid)
	start(conn, what, qid, msgid)
	step(mt.bodystring(conn, "A good message after trouble.\r\n"), what .. ": body")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": body")
	step(mt.eom(conn), what .. ": eom")
	reply_is(conn, SMFIR_ACCEPT, "accept", what .. ": eom")
	local v = mt.getheader(conn, "X-Ticketmilter", 0)
	mt.echo("checkpoint: " .. what .. ": X-Ticketmilter: " .. tostring(v))
	check(v ~= nil and string.match(v, "^ ?support@msp%.example created T%d+%.%d+$") ~= nil,
		what .. ": converted, header added")
end

function main()
	mt.set_timeout(30)
	mt.echo("checkpoint: start, port " .. tostring(port) .. ", limit " .. tostring(limit))
	local conn = mt.connect("inet:" .. port .. "@127.0.0.1", 40, 0.25)
	check(conn ~= nil, "connect")
	connect_step(conn, "connection", "192.0.2.26")

	-- 1. Abort in the middle of the body, then a good message.
	start(conn, "aborted", "ABRT1", "lua-aborted@example.com")
	step(mt.bodystring(conn, "half of a bo"), "aborted: body")
	reply_is(conn, SMFIR_CONTINUE, "continue", "aborted: body")
	step(mt.abort(conn), "aborted: abort")
	good(conn, "after abort", "ABRT2", "lua-after-abort@example.com")

	-- 2. A body over the limit: refused at the body step (552 5.3.4), then a good message.
	start(conn, "too large", "BIG1", "lua-too-large@example.com")
	step(mt.bodystring(conn, string.rep("0123456789abcdefghijklmnopqrstuvwxyz\r\n", math.floor(tonumber(limit) / 38) + 100)),
		"too large: body")
	reply_is(conn, SMFIR_REPLYCODE, "reply code", "too large: body refused")
	good(conn, "after too large", "BIG2", "lua-after-big@example.com")

	-- 3. NUL bytes in the body.
	start(conn, "nul bytes", "NUL1", "lua-nul@example.com")
	step(mt.bodystring(conn, "before\0after\r\n\0\0\0\r\n"), "nul bytes: body")
	reply_is(conn, SMFIR_CONTINUE, "continue", "nul bytes: body")
	step(mt.eom(conn), "nul bytes: eom")
	reply_is(conn, SMFIR_ACCEPT, "accept", "nul bytes: eom")
	check(mt.eom_check(conn, MT_HDRADD, "X-Ticketmilter"), "nul bytes: header added")
	good(conn, "after nul bytes", "NUL2", "lua-after-nul@example.com")

	mt.disconnect(conn)
	mt.echo("checkpoint: done")
end

local ok, err = pcall(main)
if not ok then
	mt.echo("FAIL: script stopped: " .. tostring(err))
	error(err)
end
