# %preun of the ticketmilter RPM ($1: 0 erase, 1 upgrade): on erase, stop and disable the
# daemon (as %systemd_preun does).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now ticketmilter.service >/dev/null 2>&1 || :
fi
exit 0
