#!/bin/sh
# Installs what building and testing dfotad needs on Debian 12, if missing.
# Run as root (CI and a fresh machine are); with sudo otherwise.
#   --bench     also what the benchmarks compare against
#   --console   also what the console tests need (tests/integration/console.sh,
#               openapi.sh): Debian's chromium (about 100 MB installed; 13 s
#               here from a warm apt cache, a minute or more from the network),
#               node and npm, and the npm packages of tests/console/package.json
#               (pinned) into tests/console/node_modules (about 10 s)
set -eu
PKGS="gcc make autoconf automake libtool pkg-config
libmicrohttpd-dev libgnutls28-dev libevent-dev libcoap3-dev libcoap3-bin libssl-dev libsqlite3-dev
libjansson-dev sqlite3 curl lftp openssl jq python3 procps iproute2 ca-certificates
debhelper dpkg-dev fakeroot lintian mandoc adduser util-linux
clang libclang-rt-dev"
[ "${1:-}" = "--bench" ] && PKGS="$PKGS nginx-light wrk vsftpd"
if [ "${1:-}" = "--console" ]; then
  PKGS="$PKGS chromium"
  # a node installed otherwise (nodesource, nvm) is kept
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
fi
npm_console() {
  [ "${1:-}" = "--console" ] || return 0
  d=$(cd "$(dirname "$0")/console" && pwd)
  [ -d "$d/node_modules/puppeteer-core" ] && [ -d "$d/node_modules/ajv" ] &&
    [ -d "$d/node_modules/@seriousme/openapi-schema-validator" ] && return 0
  echo "npm install in $d"
  (cd "$d" && npm install --no-package-lock --no-audit --no-fund --omit=dev >/dev/null)
}
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  npm_console "${1:-}"
  exit 0
fi
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
npm_console "${1:-}"
