#!/bin/sh
# admin.sh: the JSON admin API: bearer token, uploads and their refusals
# (401, 409, 413, 400), listing with filters, get, delete, /healthz.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

MAX=65536
CONF="$T/dfotad.conf"
base_config "$CONF"
cat >>"$CONF" <<EOF
[admin]
max_upload_size = 64K
EOF
start_dfotad "$CONF" || bail "dfotad starts"

# expect_error DESC HTTP-STATUS CODE: the last response is that error, with
# the JSON body {"error": {"code": CODE, "message": "..."}}.
expect_error() {
  expect_eq "$1: $2" "$2" "$STATUS"
  expect_eq "$1: error.code $3" "$3" "$(json "$BODY" .error.code)"
  check "$1: error.message is a non-empty string" \
    jq -e '.error.message | type == "string" and length > 0' "$BODY" >/dev/null
}

# nothing_stored DESC: no package listed, STATE/packages and STATE/tmp empty.
nothing_stored() {
  expect_eq "$1: no package listed" 0 "$(pkg_count)"
  check "$1: STATE/packages empty" dir_empty "$STATE/packages"
  check "$1: STATE/tmp empty (eventually)" wait_until 5 dir_empty "$STATE/tmp"
}

# --- token file and /healthz ---------------------------------------------------
check "token file STATE/admin.token exists" test -f "$STATE/admin.token"
expect_eq "token file mode 0600" 600 "$(file_mode "$STATE/admin.token")"
check "log names the token file" grep -q "admin token file: $STATE/admin.token" "$DFOTAD_LOG"
load_token || bail "token readable"
check "token is at least 20 characters" test "${#TOKEN}" -ge 20
check "log shows listening: http $HTTP" grep -q "listening: http $HTTP" "$DFOTAD_LOG"
check "log shows listening: admin $ADMIN" grep -q "listening: admin $ADMIN" "$DFOTAD_LOG"
check "log does not contain the token" test "$(grep -c -F -- "$TOKEN" "$DFOTAD_LOG")" = 0

api_noauth GET /healthz
expect_eq "/healthz without token: 200" 200 "$STATUS"
expect_eq "/healthz: status ok" ok "$(json "$BODY" .status)"
expect_eq "/healthz: version 0.1.0" 0.1.0 "$(json "$BODY" .version)"

# --- 401 ------------------------------------------------------------------------
SMALL="$T/small.bin"
random_file "$SMALL" 1000

api_noauth GET /api/v1/packages
expect_error "list without token" 401 unauthorized
expect_match "401: Content-Type JSON" '^application/json' "$(hdr Content-Type "$HDRS")"
api_noauth POST "/api/v1/packages?model=M&from=a&to=b" \
  -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL"
expect_error "upload without token" 401 unauthorized
nothing_stored "after upload without token"

api_noauth POST "/api/v1/packages?model=M&from=a&to=b" -H "Authorization: Bearer ${TOKEN}x" \
  -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL"
expect_error "upload with wrong token" 401 unauthorized
api_noauth GET /api/v1/packages -H "Authorization: Bearer wrong"
expect_error "list with wrong token" 401 unauthorized
api_noauth GET /api/v1/packages -H "Authorization: Bearer ${TOKEN%?}"
expect_error "list with a prefix of the token" 401 unauthorized
api_noauth GET /api/v1/packages -H "Authorization: Bearer"
expect_error "list with empty bearer" 401 unauthorized
api_noauth GET /api/v1/packages -H "Authorization: $TOKEN"
expect_error "list with the token but no Bearer scheme" 401 unauthorized
api_noauth GET /api/v1/packages -u "admin:$TOKEN"
expect_error "list with Basic auth" 401 unauthorized
api_noauth GET "/api/v1/packages?token=$TOKEN"
expect_error "list with the token in the query" 401 unauthorized
api_noauth GET /api/v1/packages/aaaaaaaaaaaa
expect_error "get without token" 401 unauthorized
api_noauth DELETE /api/v1/packages/aaaaaaaaaaaa
expect_error "delete without token" 401 unauthorized
api_noauth GET /api/v1/nothing
expect_eq "unknown /api/ path without token: 401" 401 "$STATUS"
nothing_stored "after the 401s"

api GET /api/v1/packages
expect_eq "list with token: 200" 200 "$STATUS"
expect_eq "empty list is {\"packages\":[]}" '[]' "$(jq -c .packages <"$BODY")"

# --- 400 --------------------------------------------------------------------------
: >"$T/empty.bin"
upload "$T/empty.bin" M a b
expect_error "empty body" 400 bad_request
upload "$SMALL" "" a b
expect_error "empty model" 400 bad_request
api POST "/api/v1/packages?from=a&to=b" -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL"
expect_error "missing model" 400 bad_request
api POST "/api/v1/packages?model=M&to=b" -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL"
expect_error "missing from" 400 bad_request
api POST "/api/v1/packages?model=M&from=a" -H 'Content-Type: application/octet-stream' --data-binary "@$SMALL"
expect_error "missing to" 400 bad_request
upload "$SMALL" M a a
expect_error "from equal to to" 400 bad_request
upload "$SMALL" 'M"quote' a b
expect_error "model with a double quote" 400 bad_request
upload "$SMALL" 'M\backslash' a b
expect_error "model with a backslash" 400 bad_request
upload "$SMALL" $'M\001ctl' a b
expect_error "model with a control character" 400 bad_request
upload "$SMALL" M $'a\nb' c
expect_error "from with a newline" 400 bad_request
upload "$SMALL" M a 'bé'
expect_error "to with non-ASCII" 400 bad_request
long=$(printf 'x%.0s' $(seq 1 129))
upload "$SMALL" "$long" a b
expect_error "model of 129 bytes" 400 bad_request
nothing_stored "after the 400s"

# --- 413 -------------------------------------------------------------------------
random_file "$T/big.bin" $((MAX + 1))
upload "$T/big.bin" M a b
expect_error "upload of max_upload_size+1 bytes" 413 too_large
random_file "$T/big2.bin" $((4 * MAX))
upload "$T/big2.bin" M a b
expect_error "upload of 4 x max_upload_size" 413 too_large
nothing_stored "after the 413s"

# --- 201 ---------------------------------------------------------------------------
random_file "$T/max.bin" $MAX
upload "$T/max.bin" M a b max.bin
expect_eq "upload of exactly max_upload_size: 201" 201 "$STATUS"
ID1=$PKG_ID
expect_eq "size" $MAX "$(json "$BODY" .size)"
expect_eq "sha256" "$(sha "$T/max.bin")" "$(json "$BODY" .sha256)"
expect_match "Content-Type JSON" '^application/json' "$(hdr Content-Type "$HDRS")"
long128=$(printf 'y%.0s' $(seq 1 128))
upload "$SMALL" "$long128" 'BG95M3LAR02A03_01.001.01.001' 'BG95M3LAR02A04(beta)v1.2-3+x'
expect_eq "model of 128 bytes, from/to with punctuation: 201" 201 "$STATUS"
expect_eq "to with '+' and parentheses kept" 'BG95M3LAR02A04(beta)v1.2-3+x' "$(json "$BODY" .to)"
ID128=$PKG_ID

# --- 409 ------------------------------------------------------------------------
random_file "$T/other.bin" 2000
upload "$T/other.bin" M a b
expect_error "same model/from/to again" 409 conflict
upload "$T/max.bin" M a b
expect_error "same model/from/to, same content" 409 conflict
expect_eq "after 409: still 2 packages" 2 "$(pkg_count)"
check "after 409: STATE/tmp empty" wait_until 5 dir_empty "$STATE/tmp"

# different to/from/model are different packages
upload "$T/other.bin" M b c
expect_eq "M b->c: 201" 201 "$STATUS"
ID2=$PKG_ID
upload "$SMALL" M2 a b
expect_eq "M2 a->b: 201" 201 "$STATUS"
ID3=$PKG_ID
upload "$T/other.bin" M a c
expect_eq "M a->c: 201" 201 "$STATUS"
ID4=$PKG_ID

# --- list and filters --------------------------------------------------------------
api GET /api/v1/packages
expect_eq "list: 200" 200 "$STATUS"
expect_eq "list: all 5, oldest first" "$ID1 $ID128 $ID2 $ID3 $ID4" "$(jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "list: objects have stats" "true" \
  "$(jq -r '[.packages[] | .stats.requests != null] | all' <"$BODY")"
expect_eq "filter model=M" "$ID1 $ID2 $ID4" \
  "$(api GET '/api/v1/packages?model=M'; jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "filter model=M&from=a" "$ID1 $ID4" \
  "$(api GET '/api/v1/packages?model=M&from=a'; jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "filter model=M&from=a&to=c" "$ID4" \
  "$(api GET '/api/v1/packages?model=M&from=a&to=c'; jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "filter to=b" "$ID1 $ID3" \
  "$(api GET '/api/v1/packages?to=b'; jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "filter from=a (no model)" "$ID1 $ID3 $ID4" \
  "$(api GET '/api/v1/packages?from=a'; jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "filter model=nosuch: empty" "0" "$(pkg_count 'model=nosuch')"
expect_eq "filter on a URL-encoded value" "$ID128" \
  "$(api GET "/api/v1/packages?to=$(uri 'BG95M3LAR02A04(beta)v1.2-3+x')"; jq -r '[.packages[].id] | join(" ")' <"$BODY")"

# --- get ----------------------------------------------------------------------------
pkg_json "$ID2"
expect_eq "get: 200" 200 "$STATUS"
expect_eq "get: id" "$ID2" "$(json "$BODY" .id)"
expect_eq "get: model/from/to" "M b c" "$(jq -r '"\(.model) \(.from) \(.to)"' <"$BODY")"
expect_eq "get: url" "http://$HTTP/p/$ID2" "$(json "$BODY" .url)"
pkg_json aaaaaaaaaaaa
expect_error "get unknown id" 404 not_found
pkg_json "does-not-exist-at-all"
expect_error "get malformed id" 404 not_found

# --- methods and paths ------------------------------------------------------------
api PUT /api/v1/packages --data-binary x
expect_error "PUT /api/v1/packages" 405 method_not_allowed
api PATCH "/api/v1/packages/$ID2" --data-binary x
expect_error "PATCH /api/v1/packages/ID" 405 method_not_allowed
api POST "/api/v1/packages/$ID2" --data-binary x
expect_error "POST /api/v1/packages/ID" 405 method_not_allowed
api GET /api/v1/nothing
expect_error "unknown API path" 404 not_found

# --- delete ---------------------------------------------------------------------------
dl "/p/$ID2"
expect_eq "before delete: GET /p/ID 200" 200 "$STATUS"
api DELETE "/api/v1/packages/$ID2"
expect_eq "DELETE: 204" 204 "$STATUS"
expect_eq "DELETE: empty body" 0 "$(fsize "$BODY")"
pkg_json "$ID2"
expect_error "get after delete" 404 not_found
api DELETE "/api/v1/packages/$ID2"
expect_error "DELETE again" 404 not_found
dl "/p/$ID2"
expect_eq "GET /p/ID after delete: 404" 404 "$STATUS"
dl "/p/$ID2" -H "Range: bytes=0-9"
expect_eq "ranged GET /p/ID after delete: 404" 404 "$STATUS"
expect_eq "list after delete: 4" 4 "$(pkg_count)"
upload "$T/other.bin" M b c
expect_eq "same model/from/to after delete: 201 again" 201 "$STATUS"
expect_ne "a new id" "$ID2" "$PKG_ID"
dl "/p/$PKG_ID"
check "the new package downloads" cmp -s "$T/other.bin" "$BODY"
# the other packages are untouched
dl "/p/$ID1"
check "other package still byte-identical" cmp -s "$T/max.bin" "$BODY"

# --- health after all that --------------------------------------------------------
api_noauth GET /healthz
expect_eq "/healthz still 200" 200 "$STATUS"
expect_eq "no Transfer-Encoding on admin responses" 0 "$(hdr_count Transfer-Encoding "$T/all.hdrs")"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
