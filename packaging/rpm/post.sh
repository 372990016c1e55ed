# %post of the ticketmilter RPM ($1: 1 install, 2 upgrade): the state directory, the database
# schema (`ticketmilter migrate` as ticketmilter), the systemd unit (preset on installation,
# as %systemd_post does; restarted after an upgrade when it runs).
install -d -o ticketmilter -g ticketmilter -m 0750 /var/lib/ticketmilter
if ! runuser -u ticketmilter -- env -u TICKETMILTER_DATABASE -u TICKETMILTER_CONFIG \
        /usr/sbin/ticketmilter --config /etc/ticketmilter/ticketmilter.toml migrate >/dev/null; then
    echo "ticketmilter: could not migrate the database; run 'ticketmilter migrate' once it is reachable" >&2
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset ticketmilter.service >/dev/null 2>&1 || :
    else
        systemctl try-restart ticketmilter.service >/dev/null 2>&1 || :
    fi
fi
exit 0
