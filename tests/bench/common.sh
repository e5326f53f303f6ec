# common.sh: sourced by the benchmark scripts (bash). Expects T (a
# temporary directory: bench_tmpdir makes it), DFOTAD (the binary) and CURL (an array: curl and
# its bounded options) to be set by the script.

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

int_in() { # VALUE MIN MAX
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

# bench_tmpdir NAME KEEP PIDVAR...: makes T ($TMPDIR/dfotad-NAME.XXXXXX) and
# sets the traps: at exit the processes whose pids the variables PIDVAR...
# hold then (empty: none) get SIGTERM, up to 30 s, then SIGKILL; T is
# removed unless KEEP is 1.
bench_tmpdir() {
  BENCH_NAME=$1 BENCH_TMP_KEEP=$2
  shift 2
  BENCH_PIDVARS=("$@")
  T=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-$BENCH_NAME.XXXXXX") || die "mktemp failed"
  trap bench_cleanup EXIT
  trap 'echo "$BENCH_NAME: interrupted" >&2; exit 130' INT TERM HUP
}

# shellcheck disable=SC2317  # invoked by the traps
bench_cleanup() {
  local rc=$? v p i pids=()
  trap - EXIT INT TERM HUP
  for v in "${BENCH_PIDVARS[@]}"; do
    [ -n "${!v:-}" ] && pids+=("${!v}")
  done
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    for ((i = 0; i < 300; i++)); do # bounded wait (30 s), then SIGKILL
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$BENCH_TMP_KEEP" = 1 ]; then
    echo "$BENCH_NAME: kept $T" >&2
  else
    rm -rf "$T"
  fi
  exit "$rc"
}

wait_until() { # SECONDS CMD...: CMD succeeds within SECONDS (checked every 0.1 s)
  local n=$(($1 * 10)) i=0
  shift
  while [ $i -lt $n ]; do
    "$@" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  "$@"
}

http_ok() { [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = "$2" ]; }

# start_bench_dfotad: dfotad on 127.0.0.1:$HTTP_PORT (devices) and
# :$ADMIN_PORT (admin), and :$FTP_PORT (FTP devices) when FTP_PORT is set
# (no FTP front otherwise), state in $T/state, log level warn, then the
# lines of BENCH_DFOTAD_CONF (e.g. "[http]<newline>send_lowat = 0"); checks the
# configuration with -t first and waits until it answers. Sets DFOTAD_PID,
# ADMIN_URL, DEV_URL, TOKEN_FILE and TOKEN.
start_bench_dfotad() {
  mkdir -p "$T/state" || die "mkdir $T/state failed"
  cat >"$T/dfotad.conf" <<CONF
# written by ${0##*/}
[server]
state_dir = $T/state
log_level = warn

[http]
listen = 127.0.0.1:$HTTP_PORT

[ftp]
listen = ${FTP_PORT:+127.0.0.1:$FTP_PORT}

[admin]
listen = 127.0.0.1:$ADMIN_PORT

[store]
backend = ${BENCH_STORE_BACKEND:-sqlite}
postgresql = ${BENCH_STORE_PG:-}
${BENCH_DFOTAD_CONF:+
# from BENCH_DFOTAD_CONF
$BENCH_DFOTAD_CONF}
CONF
  timeout 10 "$DFOTAD" -c "$T/dfotad.conf" -t >"$T/dfotad-t.out" 2>&1 ||
    { cat "$T/dfotad-t.out" >&2; die "dfotad -t rejected the configuration"; }
  "$DFOTAD" -c "$T/dfotad.conf" >"$T/dfotad.out" 2>"$T/dfotad.log" &
  DFOTAD_PID=$!
  ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
  DEV_URL="http://127.0.0.1:$HTTP_PORT"
  wait_until 15 http_ok "$ADMIN_URL/healthz" 200 ||
    { tail -n 20 "$T/dfotad.log" >&2; die "dfotad did not come up (admin 127.0.0.1:$ADMIN_PORT)"; }
  TOKEN_FILE="$T/state/admin.token"
  wait_until 5 test -s "$TOKEN_FILE" || die "no admin token file $TOKEN_FILE"
  TOKEN=$(head -n 1 "$TOKEN_FILE" | tr -d '\r\n')
}
