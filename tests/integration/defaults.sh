#!/bin/sh
# defaults.sh: dfotad without -c runs on its embedded defaults (state in
# ./var/dfotad, a fresh 0600 admin token whose path is logged), honours
# $STATE_DIRECTORY, and refuses a token file others can read.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

unset STATE_DIRECTORY
pick_ports
# [ftp] is on by default (127.0.0.1:2121): moved to a free port here
SETS=(--set "http.listen=$HTTP" --set "admin.listen=$ADMIN" --set "ftp.listen=$FTP")
mkdir -p "$T/cwd"
cd "$T/cwd" || bail "cd to a temporary working directory"

# expect_refused DESC ARGS...: dfotad ARGS exits by itself, non-zero, within
# 10 s (a daemon that starts serving is killed and counts as a failure);
# REFUSED_ERR holds its stderr.
expect_refused() {
  local desc=$1 rc
  shift
  timeout 10 "$DFOTAD" "$@" >/dev/null 2>"$T/refused.err"
  rc=$?
  REFUSED_ERR=$(cat "$T/refused.err")
  case $rc in
  0) fail "$desc" "exit status 0" "$REFUSED_ERR" ;;
  124 | 137) fail "$desc" "did not exit by itself within 10 s (it started?)" "$REFUSED_ERR" ;;
  *) pass "$desc (exit $rc)" ;;
  esac
}

# --- first start, embedded defaults ---------------------------------------------
STATE="$T/cwd/var/dfotad"
start_dfotad - "${SETS[@]}" || bail "dfotad starts without -c"
check "./var/dfotad created in the working directory" test -d "$T/cwd/var/dfotad"
check "./var/dfotad/admin.token created" test -f "$STATE/admin.token"
expect_eq "admin.token mode 0600" 600 "$(file_mode "$STATE/admin.token")"
check "./var/dfotad/dfotad.db created" test -f "$STATE/dfotad.db"
expect_match "log prints the token file path" \
  "admin token file: (\./|$T/cwd/)?var/dfotad/admin\.token" "$(cat "$DFOTAD_LOG")"
expect_match "log: listening: http $HTTP" "listening: http $HTTP" "$(cat "$DFOTAD_LOG")"
expect_match "log: listening: admin $ADMIN" "listening: admin $ADMIN" "$(cat "$DFOTAD_LOG")"
expect_match "log: listening: ftp $FTP" "listening: ftp $FTP" "$(cat "$DFOTAD_LOG")"
expect_match "log: dfotad ready" "dfotad ready" "$(cat "$DFOTAD_LOG")"
expect_match "log lines are 'TIMESTAMP LEVEL: text'" \
  '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warn|info|debug): ' \
  "$(grep 'dfotad ready' "$DFOTAD_LOG")"
load_token || bail "token readable"
TOKEN1=$TOKEN
check "token has at least 20 characters" test "${#TOKEN1}" -ge 20
api GET /api/v1/packages
expect_eq "the generated token works" 200 "$STATUS"
random_file "$T/pkg.bin" 100000
upload "$T/pkg.bin" DEF v1 v2
expect_eq "upload on defaults: 201" 201 "$STATUS"
ID=$PKG_ID
expect_eq "url derived from http listen" "http://$HTTP/p/$ID" "$(json "$BODY" .url)"
stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"

# --- restart: same token, same packages --------------------------------------------
start_dfotad - "${SETS[@]}" || bail "dfotad restarts without -c"
expect_eq "restart keeps the token" "$TOKEN1" "$TOKEN"
dl "/p/$ID"
check "restart keeps the package" cmp -s "$T/pkg.bin" "$BODY"
stop_dfotad

# --- a token file others can read is refused -----------------------------------
chmod 0644 "$STATE/admin.token"
expect_refused "token file mode 0644: refused at start" "${SETS[@]}"
expect_match "token file mode 0644: the message names the token file" "admin\.token" "$REFUSED_ERR"
check "token file mode 0644: file left as it was (not rewritten)" \
  test "$(head -n 1 "$STATE/admin.token")" = "$TOKEN1"
timeout 10 "$DFOTAD" -t "${SETS[@]}" >/dev/null 2>"$T/t.err"
expect_eq "token file mode 0644: -t exits 1" 1 "$?"
chmod 0640 "$STATE/admin.token"
expect_refused "token file mode 0640 (group-readable): refused at start" "${SETS[@]}"
chmod 0604 "$STATE/admin.token"
expect_refused "token file mode 0604 (other-readable): refused at start" "${SETS[@]}"
chmod 0600 "$STATE/admin.token"
start_dfotad - "${SETS[@]}" || bail "starts again once the token file is 0600"
pass "starts again once the token file is 0600"
stop_dfotad

# --- an explicit token_file ----------------------------------------------------------
printf 'my-own-token-0123456789abcdef\n' >"$T/mytoken"
chmod 0600 "$T/mytoken"
start_dfotad - "${SETS[@]}" --set "admin.token_file=$T/mytoken" ||
  bail "starts with an explicit token_file"
expect_match "log names the explicit token file" "admin token file: $T/mytoken" \
  "$(log_since "$_start_mark")"
TOKEN=my-own-token-0123456789abcdef
api GET /api/v1/packages
expect_eq "the token from token_file works" 200 "$STATUS"
TOKEN=$TOKEN1
api GET /api/v1/packages
expect_eq "the generated token no longer works" 401 "$STATUS"
stop_dfotad
chmod 0644 "$T/mytoken"
expect_refused "explicit token_file mode 0644: refused" "${SETS[@]}" --set "admin.token_file=$T/mytoken"
expect_match "explicit token_file mode 0644: the message names it" "mytoken" "$REFUSED_ERR"

# a token file that does not exist yet is created 0600
start_dfotad - "${SETS[@]}" --set "admin.token_file=$T/newtoken" ||
  bail "starts with a token_file to create"
check "token_file created" test -f "$T/newtoken"
expect_eq "token_file created with mode 0600" 600 "$(file_mode "$T/newtoken")"
stop_dfotad

# --- $STATE_DIRECTORY ---------------------------------------------------------------
mkdir -p "$T/sd"
STATE="$T/sd"
STATE_DIRECTORY="$T/sd" start_dfotad - "${SETS[@]}" || bail "starts with STATE_DIRECTORY"
check "STATE_DIRECTORY: token file there" test -f "$T/sd/admin.token"
check "STATE_DIRECTORY: database there" test -f "$T/sd/dfotad.db"
expect_eq "STATE_DIRECTORY: token mode 0600" 600 "$(file_mode "$T/sd/admin.token")"
api GET /api/v1/packages
expect_eq "STATE_DIRECTORY: a fresh, empty store" "200 0" "$STATUS $(jq '.packages | length' <"$BODY")"
stop_dfotad
expect_eq "STATE_DIRECTORY: SIGTERM exit 0" 0 "$DFOTAD_RC"

# --- -t on the embedded defaults ----------------------------------------------------
mkdir -p "$T/cwd2"
(cd "$T/cwd2" && timeout 10 "$DFOTAD" -t "${SETS[@]}" >/dev/null 2>"$T/t2.err")
expect_eq "-t with embedded defaults: exit 0" 0 "$?"

finish
