#!/bin/sh
# Installs what building and testing dfotad needs on Debian 12, if missing.
# Run as root (CI and a fresh machine are); with sudo otherwise.
set -eu
PKGS="gcc make autoconf automake libtool pkg-config
libmicrohttpd-dev libgnutls28-dev libevent-dev libcoap3-dev libcoap3-bin libssl-dev libsqlite3-dev
libjansson-dev sqlite3 curl lftp openssl jq python3 procps iproute2 ca-certificates
libpq-dev postgresql-15"
[ "${1:-}" = "--bench" ] && PKGS="$PKGS nginx-light wrk vsftpd"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
