#!/bin/sh
# damaged.sh: package content damaged on disk while the daemon was down
# (truncated, one byte changed, file removed) is reported as "damaged" with
# a reason, and served as 503, never as wrong bytes; intact packages are
# unaffected; a damaged package can be deleted and uploaded again.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

CONF="$T/dfotad.conf"
base_config "$CONF"
start_dfotad "$CONF" || bail "dfotad starts"

for n in 1 2 3 4; do
  random_file "$T/p$n.bin" 200000
  upload "$T/p$n.bin" DMG "v$n" "v$((n + 1))"
  expect_eq "upload $n: 201" 201 "$STATUS"
  eval "ID$n=\$PKG_ID"
done
stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"

truncate -s 5000 "$STATE/packages/$(sha "$T/p1.bin")"
printf 'X' | dd of="$STATE/packages/$(sha "$T/p2.bin")" bs=1 seek=500 conv=notrunc 2>/dev/null
rm -f "$STATE/packages/$(sha "$T/p3.bin")"
# p4 stays intact

start_dfotad "$CONF" || bail "dfotad starts with damaged content"
pass "dfotad starts with damaged content"

for n in 1 2 3; do
  case $n in 1) what=truncated ;; 2) what="one byte changed" ;; 3) what="file removed" ;; esac
  eval "id=\$ID$n"
  pkg_json "$id"
  expect_eq "$what: listed with status damaged" damaged "$(json "$BODY" .status)"
  check "$what: a damage reason is given" test -n "$(json "$BODY" .damage)"
  dl "/p/$id"
  expect_eq "$what: GET /p/ID: 503" 503 "$STATUS"
  check "$what: GET /p/ID: no package bytes" test "$(fsize "$BODY")" -lt 5000
  dl "/p/$id" -H "Range: bytes=0-10239"
  expect_eq "$what: ranged GET: 503" 503 "$STATUS"
  dl "/p/$id" -I
  expect_eq "$what: HEAD: 503" 503 "$STATUS"
done
expect_eq "no Transfer-Encoding on 503s" 0 "$(hdr_count Transfer-Encoding "$T/all.hdrs")"
expect_eq "Content-Length on every 503" "" "$(responses_without Content-Length "$T/all.hdrs")"

pkg_json "$ID4"
expect_eq "intact package: status ok" ok "$(json "$BODY" .status)"
expect_eq "intact package: no damage field" "" "$(json "$BODY" .damage)"
dl "/p/$ID4"
check "intact package: byte-identical" cmp -s "$T/p4.bin" "$BODY"
api GET "/api/v1/packages?model=DMG"
statuses=
for n in 1 2 3 4; do
  eval "i=\$ID$n"
  statuses="$statuses $(jq -r --arg i "$i" '.packages[] | select(.id == $i) | .status' <"$BODY")"
done
expect_eq "list: statuses of the four" " damaged damaged damaged ok" "$statuses"

# delete the damaged one and upload it again
api DELETE "/api/v1/packages/$ID1"
expect_eq "DELETE a damaged package: 204" 204 "$STATUS"
upload "$T/p1.bin" DMG v1 v2
expect_eq "upload it again: 201" 201 "$STATUS"
NEW1=$PKG_ID
expect_eq "the new upload is ok" ok "$(json "$BODY" .status)"
dl "/p/$NEW1"
check "the new upload downloads byte-identical" cmp -s "$T/p1.bin" "$BODY"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
