#!/bin/bash
# install.sh: make install and make uninstall into a DESTDIR (issue 17),
# with the paths configure takes given as make variables: prefix,
# sysconfdir and localstatedir each land where they say, in the files and
# in what the installed configuration and unit name.
#
# 1. /var (what a system service uses): no state directory made (systemd's
#    StateDirectory= or the Debian package makes /var/lib/dfotad).
# 2. /srv/...: the state directory made 0750, the unit allowed to write it
#    (ReadWritePaths=) and started in it; its hardening kept (<= 1.6).
# 3. make uninstall: the files go; a changed configuration stays.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

BUILD=${top_builddir:-$LIB_DIR/../..}
[ -f "$BUILD/Makefile" ] || {
  echo "# SKIP: no configured build tree in $BUILD"
  exit 77
}
# not the variables of the make check that runs this test
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES TESTS

# inst DESTDIR PREFIX SYSCONFDIR LOCALSTATEDIR [TARGET]
inst() {
  make -s -C "$BUILD" "${5:-install}" DESTDIR="$1" prefix="$2" sysconfdir="$3" localstatedir="$4" \
    systemdsystemunitdir="$2/lib/systemd/system" >"$T/make.out" 2>&1
}
files() { (cd "$1" && find . \( -type f -o -type l \) | sort | tr '\n' ' ' | sed 's/ $//'); }

# 1. the system service's paths
D="$T/d1"
check "make install DESTDIR prefix=/usr sysconfdir=/etc localstatedir=/var" inst "$D" /usr /etc /var
expect_eq "what lands" \
  "./etc/dfotad/dfotad.conf ./usr/lib/systemd/system/dfotad.service ./usr/sbin/dfotad ./usr/share/man/man5/dfotad.conf.5 ./usr/share/man/man8/dfotad.8" \
  "$(files "$D")"
expect_eq "the configuration's state_dir" "state_dir = /var/lib/dfotad" "$(grep '^state_dir' "$D/etc/dfotad/dfotad.conf")"
U="$D/usr/lib/systemd/system/dfotad.service"
expect_eq "the unit runs the installed binary on the installed configuration" \
  "/usr/sbin/dfotad -c /etc/dfotad/dfotad.conf" "$(sed -n 's/^ExecStart=//p' "$U")"
expect_eq "... in /var/lib/dfotad, systemd's StateDirectory" "WorkingDirectory=/var/lib/dfotad" \
  "$(grep -E '^(WorkingDirectory|ReadWritePaths)=' "$U")"
check_not "no state directory made (systemd makes it)" test -e "$D/var"
check "the installed binary runs" "$D/usr/sbin/dfotad" --version

# 2. elsewhere
D="$T/d2"
check "make install DESTDIR prefix=/opt/dfo sysconfdir=/etc/dfo localstatedir=/srv/dfo" \
  inst "$D" /opt/dfo /etc/dfo /srv/dfo
expect_eq "what lands" \
  "./etc/dfo/dfotad/dfotad.conf ./opt/dfo/lib/systemd/system/dfotad.service ./opt/dfo/sbin/dfotad ./opt/dfo/share/man/man5/dfotad.conf.5 ./opt/dfo/share/man/man8/dfotad.8" \
  "$(files "$D")"
expect_eq "the configuration's state_dir" "state_dir = /srv/dfo/lib/dfotad" \
  "$(grep '^state_dir' "$D/etc/dfo/dfotad/dfotad.conf")"
expect_match "its own -t line names it" "dfotad -c /etc/dfo/dfotad/dfotad.conf -t" \
  "$(cat "$D/etc/dfo/dfotad/dfotad.conf")"
U="$D/opt/dfo/lib/systemd/system/dfotad.service"
expect_eq "the unit's ExecStart" "/opt/dfo/sbin/dfotad -c /etc/dfo/dfotad/dfotad.conf" \
  "$(sed -n 's/^ExecStart=//p' "$U")"
expect_eq "the unit may write the state directory and starts in it" \
  "WorkingDirectory=/srv/dfo/lib/dfotad ReadWritePaths=/srv/dfo/lib/dfotad" \
  "$(grep -E '^(WorkingDirectory|ReadWritePaths)=' "$U" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "the state directory made, 0750" 750 "$(stat -c %a "$D/srv/dfo/lib/dfotad" 2>&1)"
if command -v systemd-analyze >/dev/null 2>&1; then
  score=$(systemd-analyze security --offline=yes "$U" 2>/dev/null |
    sed -n 's/.*Overall exposure level for dfotad.service: \([0-9.]*\).*/\1/p')
  echo "# systemd-analyze security of the installed unit: ${score:-?}"
  check "its hardening is kept (${score:-?} <= 1.6)" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 1.6) }'
fi

# 3. uninstall: the files go, a changed configuration stays
echo "# a local change" >>"$D/etc/dfo/dfotad/dfotad.conf"
check "make uninstall" inst "$D" /opt/dfo /etc/dfo /srv/dfo uninstall
expect_eq "only the changed configuration is left" "./etc/dfo/dfotad/dfotad.conf" "$(files "$D")"
check "make uninstall of the unchanged one" inst "$T/d1" /usr /etc /var uninstall
expect_eq "nothing left" "" "$(files "$T/d1")"

finish
