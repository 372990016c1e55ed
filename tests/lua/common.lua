-- What both miltertest scripts share: checks that echo a checkpoint (miltertest prints no Lua
-- error text, so every failure echoes "FAIL: <what>" before it stops the script), and the steps
-- the milter may negotiate away, taken the way an MTA takes them. Loaded with
-- `dofile(common)`; tests/miltertest.rs passes this file's path as the global `common`.

function check(cond, what)
	if cond then
		mt.echo("ok: " .. what)
	else
		mt.echo("FAIL: " .. what)
		error(what)
	end
end

function step(r, what)
	check(r == nil, what .. " (" .. tostring(r) .. ")")
end

function reply_is(conn, want, wname, what)
	local got = mt.getreply(conn)
	check(got == want, what .. ": reply " .. wname .. " (got " .. tostring(got) .. ")")
end

-- The steps the milter may negotiate away, taken the way an MTA takes them: the macros it asks
-- for are sent all the same; a skipped step sends nothing and counts as "continue".
function connect_step(conn, what, addr)
	step(mt.macro(conn, SMFIC_CONNECT, "{client_addr}", addr), what .. ": macro {client_addr}")
	if mt.test_option(conn, SMFIP_NOCONNECT) then
		return
	end
	step(mt.conninfo(conn, "client.example", addr), what .. ": conninfo")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": conninfo")
end

-- DATA; returns the reply (continue when the step is skipped).
function data_step(conn, what)
	if mt.test_option(conn, SMFIP_NODATA) then
		return SMFIR_CONTINUE
	end
	step(mt.data(conn), what .. ": data")
	return mt.getreply(conn)
end

-- End of header; checks that the milter continues.
function eoh_step(conn, what)
	if mt.test_option(conn, SMFIP_NOEOH) then
		return
	end
	step(mt.eoh(conn), what .. ": eoh")
	reply_is(conn, SMFIR_CONTINUE, "continue", what .. ": eoh")
end
