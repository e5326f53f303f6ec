#!/bin/sh
# download.sh: device downloads on the http listener: whole file, resume,
# segmented download, exact Range semantics (416 rather than a whole body),
# If-Range, HEAD, never chunked, 404/405, statistics.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

CONF="$T/dfotad.conf"
base_config "$CONF"
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "admin token file $STATE/admin.token readable"

SIZE=3145728
PKG="$T/pkg.bin"
random_file "$PKG" $SIZE
SHA=$(sha "$PKG")

# --- upload -----------------------------------------------------------------
upload "$PKG" BG95-M3 BG95M3LAR02A03 BG95M3LAR02A04 "delta_a03-a04.bin"
expect_eq "upload 3 MiB: 201" 201 "$STATUS"
[ -n "$PKG_ID" ] || bail "upload returned an id" "$(cat "$BODY")"
ID=$PKG_ID
expect_match "id is 12 chars of [a-z2-7]" '^[a-z2-7]{12}$' "$ID"
expect_eq "upload: size in JSON" "$SIZE" "$(json "$BODY" .size)"
expect_eq "upload: sha256 in JSON" "$SHA" "$(json "$BODY" .sha256)"
expect_eq "upload: model" "BG95-M3" "$(json "$BODY" .model)"
expect_eq "upload: from" "BG95M3LAR02A03" "$(json "$BODY" .from)"
expect_eq "upload: to" "BG95M3LAR02A04" "$(json "$BODY" .to)"
expect_eq "upload: name (URL-decoded)" "delta_a03-a04.bin" "$(json "$BODY" .name)"
expect_eq "upload: status ok" "ok" "$(json "$BODY" .status)"
expect_match "upload: created is an RFC 3339 UTC time" \
  '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$' "$(json "$BODY" .created)"
expect_eq "upload: url" "http://$HTTP/p/$ID" "$(json "$BODY" .url)"
expect_eq "upload: no https_url without https listener" "" "$(json "$BODY" .https_url)"
expect_eq "upload: stats.requests 0" 0 "$(json "$BODY" .stats.requests)"
expect_match "upload: Content-Type JSON" '^application/json' "$(hdr Content-Type "$HDRS")"
check "content stored as STATE/packages/<sha256>" cmp -s "$PKG" "$STATE/packages/$SHA"

# --- whole file ---------------------------------------------------------------
dl "/p/$ID"
expect_eq "GET /p/ID: 200" 200 "$STATUS"
check "GET /p/ID: byte-identical" cmp -s "$PKG" "$BODY"
expect_eq "GET /p/ID: Content-Length" "$SIZE" "$(hdr Content-Length "$HDRS")"
expect_eq "GET /p/ID: Accept-Ranges" "bytes" "$(hdr Accept-Ranges "$HDRS")"
expect_eq "GET /p/ID: ETag is the quoted sha256" "\"$SHA\"" "$(hdr ETag "$HDRS")"
expect_eq "GET /p/ID: Content-Type" "application/octet-stream" "$(hdr Content-Type "$HDRS")"
expect_match "GET /p/ID: Cache-Control no-transform" "no-transform" "$(hdr Cache-Control "$HDRS")"
LASTMOD=$(hdr Last-Modified "$HDRS")
expect_match "GET /p/ID: Last-Modified is an HTTP date" \
  '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$' "$LASTMOD"
expect_eq "GET /p/ID: no Content-Range on 200" "" "$(hdr Content-Range "$HDRS")"
expect_eq "GET /p/ID: no Content-Encoding" "" "$(hdr Content-Encoding "$HDRS")"

# asking for compression changes nothing
dl "/p/$ID" -H 'Accept-Encoding: gzip, deflate, br'
check "GET with Accept-Encoding: gzip: byte-identical, not compressed" cmp -s "$PKG" "$BODY"
expect_eq "GET with Accept-Encoding: no Content-Encoding" "" "$(hdr Content-Encoding "$HDRS")"

# HTTP/1.0 client
dl "/p/$ID" --http1.0
expect_eq "HTTP/1.0 GET: 200" 200 "$STATUS"
check "HTTP/1.0 GET: byte-identical" cmp -s "$PKG" "$BODY"

dl "/p/$ID/BG95M3LAR02A03_to_A04.bin"
expect_eq "GET /p/ID/anyname: 200" 200 "$STATUS"
check "GET /p/ID/anyname: byte-identical" cmp -s "$PKG" "$BODY"

# --- HEAD ---------------------------------------------------------------------
dl "/p/$ID" -I
expect_eq "HEAD /p/ID: 200" 200 "$STATUS"
expect_eq "HEAD: Content-Length" "$SIZE" "$(hdr Content-Length "$HDRS")"
expect_eq "HEAD: Accept-Ranges" "bytes" "$(hdr Accept-Ranges "$HDRS")"
expect_eq "HEAD: ETag" "\"$SHA\"" "$(hdr ETag "$HDRS")"
# (curl -I writes the headers as its output: the "body" must be just them)
check "HEAD: curl sees no body" cmp -s "$HDRS" "$BODY"
expect_eq "HEAD on a raw connection: nothing after the headers" 0 "$(raw_head_body_len "$HTTP_PORT" "/p/$ID")"
dl "/p/$ID/x.bin" -I
expect_eq "HEAD /p/ID/anyname: 200" 200 "$STATUS"

# --- resume at an arbitrary offset ------------------------------------------
N=1234567
dl "/p/$ID" -H "Range: bytes=$N-"
expect_eq "Range bytes=$N-: 206" 206 "$STATUS"
expect_eq "Range bytes=$N-: Content-Range" "bytes $N-$((SIZE - 1))/$SIZE" "$(hdr Content-Range "$HDRS")"
expect_eq "Range bytes=$N-: Content-Length" "$((SIZE - N))" "$(hdr Content-Length "$HDRS")"
{ head -c $N "$PKG"; cat "$BODY"; } >"$T/resumed.bin"
expect_eq "resume at $N: first N bytes + tail has the right sha256" "$SHA" "$(sha "$T/resumed.bin")"

# curl's own resume (-C) sends the same kind of request
head -c 777777 "$PKG" >"$T/partial.bin"
curl -sS --max-time "$CURL_MAX_TIME" -C - -o "$T/partial.bin" "http://$HTTP/p/$ID" 2>/dev/null
check "curl -C - resumes a partial file to the right content" cmp -s "$PKG" "$T/partial.bin"

# --- segmented download, as AT+QFOTADL=url,breakpoint,10240 does ------------
SEG=10240
if out=$(segments "http://$HTTP/p/$ID" $SIZE $SEG "$T/segments.bin"); then
  pass "segments of $SEG bytes, fresh connection each: all 206 with exact Content-Range/length ($out)"
else
  fail "segments of $SEG bytes, fresh connection each: all 206 with exact Content-Range/length" "$out"
fi
# the same with curl, on a few segments, and the last (short) one
for off in 0 10240 1228800 3143680; do
  end=$((off + SEG - 1))
  exp_end=$((end < SIZE - 1 ? end : SIZE - 1))
  dl "/p/$ID" -H "Range: bytes=$off-$end"
  expect_eq "curl bytes=$off-$end: 206, Content-Range, length" \
    "206 bytes $off-$exp_end/$SIZE $((exp_end - off + 1))" \
    "$STATUS $(hdr Content-Range "$HDRS") $(fsize "$BODY")"
  head -c $((exp_end + 1)) "$PKG" | tail -c $((exp_end - off + 1)) >"$T/seg.exp"
  check "curl bytes=$off-$end: exact bytes" cmp -s "$T/seg.exp" "$BODY"
done
expect_eq "segments reassembled: sha256 matches" "$SHA" "$(sha "$T/segments.bin")"

# --- other satisfiable ranges ---------------------------------------------------
dl "/p/$ID" -H "Range: bytes=-10"
expect_eq "bytes=-10: 206" 206 "$STATUS"
expect_eq "bytes=-10: Content-Range" "bytes $((SIZE - 10))-$((SIZE - 1))/$SIZE" "$(hdr Content-Range "$HDRS")"
tail -c 10 "$PKG" >"$T/last10"
check "bytes=-10: the last 10 bytes" cmp -s "$T/last10" "$BODY"

dl "/p/$ID" -H "Range: bytes=0-0"
expect_eq "bytes=0-0: 206" 206 "$STATUS"
expect_eq "bytes=0-0: Content-Range" "bytes 0-0/$SIZE" "$(hdr Content-Range "$HDRS")"
head -c 1 "$PKG" >"$T/first1"
check "bytes=0-0: the first byte" cmp -s "$T/first1" "$BODY"

S5=$((SIZE - 5))
dl "/p/$ID" -H "Range: bytes=$S5-$((SIZE + 1000))"
expect_eq "bytes=S-M with M past the end: 206" 206 "$STATUS"
expect_eq "bytes=S-M with M past the end: clamped Content-Range" "bytes $S5-$((SIZE - 1))/$SIZE" \
  "$(hdr Content-Range "$HDRS")"
tail -c 5 "$PKG" >"$T/last5"
check "bytes=S-M with M past the end: the last 5 bytes" cmp -s "$T/last5" "$BODY"

dl "/p/$ID" -H "Range: bytes=$((SIZE - 1))-"
expect_eq "bytes=SIZE-1-: 206 with one byte" "206 1" "$STATUS $(fsize "$BODY")"

# RFC 9110: a suffix longer than the representation selects all of it
dl "/p/$ID" -H "Range: bytes=-$((SIZE + 100))"
expect_eq "bytes=-(SIZE+100): 206" 206 "$STATUS"
expect_eq "bytes=-(SIZE+100): whole file range" "bytes 0-$((SIZE - 1))/$SIZE" "$(hdr Content-Range "$HDRS")"
check "bytes=-(SIZE+100): byte-identical" cmp -s "$PKG" "$BODY"

# --- unsatisfiable and malformed ranges: 416, Content-Range */SIZE, no body --
# expect_416 DESC CURL-ARGS...
expect_416() {
  local desc=$1
  shift
  dl "/p/$ID" "$@"
  expect_eq "$desc: 416" 416 "$STATUS"
  expect_eq "$desc: Content-Range bytes */SIZE" "bytes */$SIZE" "$(hdr Content-Range "$HDRS")"
  if [ "$(fsize "$BODY")" -ge 1000 ]; then
    fail "$desc: no package bytes in the body" "body has $(fsize "$BODY") bytes"
  fi
}
expect_416 "bytes=SIZE-" -H "Range: bytes=$SIZE-"
expect_416 "bytes=SIZE-(SIZE+10)" -H "Range: bytes=$SIZE-$((SIZE + 10))"
expect_416 "bytes=(SIZE+100)-" -H "Range: bytes=$((SIZE + 100))-"
expect_416 "bytes=-0" -H "Range: bytes=-0"
expect_416 "bytes=alpha" -H "Range: bytes=alpha"
expect_416 "bytes=5-4" -H "Range: bytes=5-4"
expect_416 "bytes=0-1,5-6 (several ranges)" -H "Range: bytes=0-1,5-6"
expect_416 "items=0-1 (other unit)" -H "Range: items=0-1"
expect_416 "bytes= (empty)" -H "Range: bytes="
expect_416 "bytes=- (no numbers)" -H "Range: bytes=-"
expect_416 "bytes=1-2-3" -H "Range: bytes=1-2-3"
expect_416 "bytes=0x10-" -H "Range: bytes=0x10-"
expect_416 "bytes=+5-" -H "Range: bytes=+5-"
expect_416 "bytes=99999999999999999999999- (overflow)" -H "Range: bytes=99999999999999999999999-"
expect_416 "two Range headers" -H "Range: bytes=0-1" -H "Range: bytes=2-3"
# an empty Range header is no valid range either (curl sends "Range:" with -H 'Range;')
expect_416 "empty Range header" -H "Range;"

# --- If-Range -------------------------------------------------------------------
dl "/p/$ID" -H "Range: bytes=100-199" -H "If-Range: \"$SHA\""
expect_eq "If-Range with the right ETag: 206" 206 "$STATUS"
expect_eq "If-Range with the right ETag: Content-Range" "bytes 100-199/$SIZE" "$(hdr Content-Range "$HDRS")"
dl "/p/$ID" -H "Range: bytes=100-199" -H "If-Range: \"0000$SHA\""
expect_eq "If-Range with another ETag: 200" 200 "$STATUS"
check "If-Range with another ETag: the whole file" cmp -s "$PKG" "$BODY"
dl "/p/$ID" -H "Range: bytes=100-199" -H "If-Range: W/\"$SHA\""
expect_eq "If-Range with a weak ETag: 200 whole file" "200 $SIZE" "$STATUS $(fsize "$BODY")"
if [ -n "$LASTMOD" ]; then
  dl "/p/$ID" -H "Range: bytes=100-199" -H "If-Range: $LASTMOD"
  expect_eq "If-Range with the Last-Modified date: 206" 206 "$STATUS"
  dl "/p/$ID" -H "Range: bytes=100-199" -H "If-Range: Thu, 01 Jan 1970 00:00:00 GMT"
  expect_eq "If-Range with another date: 200 whole file" "200 $SIZE" "$STATUS $(fsize "$BODY")"
fi

# --- errors -----------------------------------------------------------------------
dl "/p/aaaaaaaaaaaa"
expect_eq "unknown id: 404" 404 "$STATUS"
dl "/p/aaaaaaaaaaaa/name.bin"
expect_eq "unknown id with name: 404" 404 "$STATUS"
dl "/p/aaaaaaaaaaaa" -H "Range: bytes=0-1"
expect_eq "unknown id with Range: 404" 404 "$STATUS"
dl "/p/"
expect_eq "/p/ (no id): 404" 404 "$STATUS"
dl "/p/$SHA"
expect_eq "/p/<sha256> (not an id): 404" 404 "$STATUS"
dl "/p/..%2f..%2fdfotad.db"
expect_eq "/p/..%2f..%2fdfotad.db: 404" 404 "$STATUS"
dl "/nothing-here"
expect_eq "unknown path: 404" 404 "$STATUS"
dl "/api/v1/packages" -H "Authorization: Bearer $TOKEN"
expect_ne "admin API is not served on the device listener" 200 "$STATUS"

for m in POST PUT DELETE PATCH; do
  dl "/p/$ID" -X "$m" --data-binary x
  expect_eq "$m /p/ID: 405" 405 "$STATUS"
  allow=$(hdr Allow "$HDRS")
  expect_match "$m /p/ID: Allow names GET and HEAD" 'GET.*HEAD|HEAD.*GET' "$allow"
done
dl "/p/$ID" -X OPTIONS
expect_eq "OPTIONS /p/ID: 405" 405 "$STATUS"

# the package is still served after all these requests
dl "/p/$ID"
check "still byte-identical after the error cases" cmp -s "$PKG" "$BODY"

# --- parallel downloads ------------------------------------------------------------
pids=()
for i in 1 2 3 4 5 6 7 8; do
  curl -s --max-time 30 -o "$T/par.$i" "http://$HTTP/p/$ID" &
  pids+=($!)
  BG_PIDS+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
par_ok=0
for i in 1 2 3 4 5 6 7 8; do cmp -s "$PKG" "$T/par.$i" && par_ok=$((par_ok + 1)); done
expect_eq "8 parallel downloads byte-identical" 8 "$par_ok"

# --- never chunked; Content-Length on every response ------------------------------
expect_eq "no response had Transfer-Encoding" 0 "$(hdr_count Transfer-Encoding "$T/all.hdrs")"
n_status=$(tr -d '\r' <"$T/all.hdrs" | grep -c '^HTTP/')
no_cl=$(responses_without Content-Length "$T/all.hdrs")
expect_eq "every response ($n_status) had Content-Length" "" "$no_cl"

# --- statistics -------------------------------------------------------------------
pkg_json "$ID"
expect_eq "GET /api/v1/packages/ID: 200" 200 "$STATUS"
req=$(json "$BODY" .stats.requests)
sent=$(json "$BODY" .stats.bytes_sent)
dls=$(json "$BODY" .stats.downloads)
check "stats: requests counted (>= 300, got $req)" test "${req:-0}" -ge 300
check "stats: bytes_sent >= 10 * SIZE (got $sent)" test "${sent:-0}" -ge $((10 * SIZE))
check "stats: downloads >= 10 (got $dls)" test "${dls:-0}" -ge 10

# exact accounting on a fresh small package
SMALL="$T/small.bin"
SSIZE=100000
random_file "$SMALL" $SSIZE
upload "$SMALL" STATS-MODEL v1 v2
expect_eq "upload small: 201" 201 "$STATUS"
SID=$PKG_ID
pkg_json "$SID"
expect_eq "fresh package: stats all 0" "0 0 0" \
  "$(json "$BODY" .stats.requests) $(json "$BODY" .stats.bytes_sent) $(json "$BODY" .stats.downloads)"
dl "/p/$SID"                                    # +1 req, +SSIZE bytes, +1 download
dl "/p/$SID" -I                                 # +1 req
dl "/p/$SID/x.bin" -H "Range: bytes=0-99"       # +1 req, +100 bytes
dl "/p/$SID" -H "Range: bytes=$((SSIZE - 100))-" # +1 req, +100 bytes, +1 download
pkg_json "$SID"
expect_eq "stats.requests = 4 (GET, HEAD, 2 ranges)" 4 "$(json "$BODY" .stats.requests)"
expect_eq "stats.bytes_sent = SIZE + 200" $((SSIZE + 200)) "$(json "$BODY" .stats.bytes_sent)"
expect_eq "stats.downloads = 2 (responses with the last byte)" 2 "$(json "$BODY" .stats.downloads)"
# the list shows the same, current values
api GET "/api/v1/packages?model=STATS-MODEL"
expect_eq "list: stats current too" "4 $((SSIZE + 200)) 2" \
  "$(jq -r '.packages[0].stats | "\(.requests) \(.bytes_sent) \(.downloads)"' <"$BODY")"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
