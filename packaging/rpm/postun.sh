# %postun of the ticketmilter RPM ($1: 0 erase, 1 upgrade): let systemd forget the removed unit,
# and after an erase remove the package's directories that are left empty (the package owns its
# files only). RPM has no purge: the database in /var/lib/ticketmilter, a changed configuration
# file (saved as ticketmilter.toml.rpmsave) and the ticketmilter user stay after an erase, as on
# Fedora and RHEL; remove them by hand: rm -r /var/lib/ticketmilter, then userdel ticketmilter.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    rmdir /etc/ticketmilter /usr/share/doc/ticketmilter /usr/share/licenses/ticketmilter 2>/dev/null || :
fi
exit 0
