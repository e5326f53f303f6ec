#!/bin/sh
# layers.sh: the include rules the layout promises, checked on the tracked
# sources (no daemon runs):
# - no front folder (server/http, server/coap, server/ftp, server/admin, and
#   any new server/*/) includes another front's headers;
# - util/ includes only util/ headers and no protocol library (libmicrohttpd,
#   GnuTLS, OpenSSL's TLS, libcoap, libevent; OpenSSL's RAND is fine), and names no front's section or
#   limit: each front declares its own config rows and limits;
# - includes point one way between the layers util -> store/net -> fleet ->
#   api -> server (the fronts and main): none reaches a later layer.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

ROOT=${top_srcdir:-$(cd "$LIB_DIR/../.." && pwd)}
cd "$ROOT" || bail "the source tree"
# (a build's copy inside the checkout, as tests/run-all makes, is not the
# checkout: git would list nothing there)
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]; then
  FILES=$(git ls-files '*.c' '*.h' | grep -v '^tests/')
else # a copy of the tracked tree (tests/run-all)
  FILES=$(find util store net fleet api server -name '*.[ch]' | sort)
fi

# includes FILE: the project paths FILE includes, normalized from the root.
includes() {
  local d
  d=$(dirname "$1")
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1" |
    while read -r inc; do
      realpath -m --relative-to=. "$d/$inc"
    done
}

# --- fronts: none includes another's headers ---------------------------------------------
FRONTS=$(printf '%s\n' $FILES | sed -n 's|^server/\([^/]*\)/.*|\1|p' | sort -u)
expect_ne "front folders found under server/" "" "$FRONTS"
bad=
for f in $(printf '%s\n' $FILES | grep '^server/[^/]*/'); do
  own=$(printf '%s' "$f" | cut -d/ -f2)
  for inc in $(includes "$f"); do
    case $inc in
    server/*/*)
      other=$(printf '%s' "$inc" | cut -d/ -f2)
      [ "$other" != "$own" ] && bad="$bad $f->$inc"
      ;;
    server/*) bad="$bad $f->$inc" ;; # the table, main, the listener: above every front
    esac
  done
done
expect_eq "no front includes another front's (or server/'s) headers" "" "$bad"

# --- util/ knows no protocol ------------------------------------------------------------------
bad=
for f in $(printf '%s\n' $FILES | grep '^util/'); do
  for inc in $(includes "$f"); do
    case $inc in util/* | autoconfig.h) ;; *) bad="$bad $f->$inc" ;; esac
  done
  grep -HnE '#[[:space:]]*include[[:space:]]*<(microhttpd|gnutls/|openssl/(ssl|x509|pem)|coap3/|event2/)' "$f" &&
    bad="$bad $f->library"
done
expect_eq "util/ includes only util/ headers and no protocol library" "" "$bad"
# proto.{c,h} name the delivery core's accounting keys ("http", "coap", ...);
# the configuration and the limits name no front's section, key or limit
bad=$(grep -HnE '"(https?|coaps?|ftps?|admin)"|(HTTP|COAP|FTP|ADMIN|TLS|SNI)_[A-Z_]+|front\[' \
  util/config.c util/config.h util/limits.h util/listen.c | grep -v '^[^:]*:[0-9]*:[[:space:]]*\(/\*\| \*\)')
expect_eq "util/config.* and util/limits.h name no front's section or limit" "" "$bad"

# --- layers point one way -------------------------------------------------------------------
rank() {
  case $1 in
  util/*) echo 0 ;; store/* | net/*) echo 1 ;; fleet/*) echo 2 ;; api/*) echo 3 ;;
  server/*) echo 4 ;; *) echo -1 ;;
  esac
}
bad=
for f in $FILES; do
  rf=$(rank "$f")
  [ "$rf" -lt 0 ] && continue
  for inc in $(includes "$f"); do
    ri=$(rank "$inc")
    [ "$ri" -gt "$rf" ] && bad="$bad $f->$inc"
    # store/ and net/ share a layer but not each other's headers
    case $f:$inc in store/*:net/* | net/*:store/*) bad="$bad $f->$inc" ;; esac
  done
done
expect_eq "includes point one way: util -> store/net -> fleet -> api -> server" "" "$bad"
finish
