# %pre of the ticketmilter RPM ($1: 1 install, 2 upgrade): the system group and user
# ticketmilter, before the files (the configuration file belongs to group ticketmilter), and
# membership in group postfix when it exists, so that the daemon can hand its socket to Postfix.
getent group ticketmilter >/dev/null || groupadd -r ticketmilter
getent passwd ticketmilter >/dev/null || \
    useradd -r -g ticketmilter -d /var/lib/ticketmilter -M -s /sbin/nologin \
        -c "ticketmilter mail filter" ticketmilter
if getent group postfix >/dev/null; then
    usermod -a -G postfix ticketmilter
fi
exit 0
