#!/usr/bin/env bash
# Smoke test of the greeter and the interop clients with no proxy in between: starts two
# greeters on loopback (port 0), runs `greeter call`, the Python client and the Node client
# against the first, checks their output, and stops the greeters.
#
#   tests/interop/run_direct.sh BUILD_DIR/examples/greeter/greeter
#
# The Node client needs `npm ci --prefix tests/interop/node` first; without node_modules that
# check is skipped (and says so). Ends with "N passed, N failed"; exits 1 if any check failed.
set -u

greeter=${1:?usage: run_direct.sh PATH_TO_GREETER}
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../examples/greeter" && pwd)/helloworld.proto
work=$(mktemp -d)
pids=()
passed=0
failed=0

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: one check, passed when COMMAND exits 0
  local name=$1
  shift
  if "$@"; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# start_greeter ID: starts one greeter in this shell (so cleanup knows its pid).
start_greeter() {
  "$greeter" serve --port 0 --address 127.0.0.1 --id "$1" >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
}

# target_of ID: the HOST:PORT a started greeter said it listens on, waiting up to 10 s.
target_of() {
  local out="$work/$1.out"
  for _ in $(seq 1 100); do
    if [[ -s $out ]]; then
      awk '{print $NF}' "$out"
      return 0
    fi
    sleep 0.1
  done
  echo "greeter $1 did not start" >&2
  return 1
}

json_ok() {  # json_ok FILE N: the client's JSON line says N unary calls and both streams passed
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
n = int(sys.argv[2])
ok = (result["ok"] == n and result["failed"] == 0 and result["backends"] == {"greeter-1": n}
      and result["stream_ok"] is True and result["bidi_ok"] is True)
if not ok:
    print("unexpected result: %r" % result, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

start_greeter greeter-1
start_greeter greeter-2
target1=$(target_of greeter-1) || exit 1
target2=$(target_of greeter-2) || exit 1

call_six() {  # six calls over one channel, all to greeter-1, and the table says so
  local out="$work/call.out"
  timeout 60 "$greeter" call --target "$target1" -n 6 >"$out" &&
    grep -qx 'greeter-1 *6' "$out" && grep -qx 'total *6' "$out" &&
    [[ $(grep -c '^#[1-6] - Greeting: Hello from greeter-1, Anvil User!$' "$out") == 6 ]]
}

call_second() {
  timeout 60 "$greeter" call --target "$target2" -n 1 | grep -qx 'greeter-2 *1'
}

call_failing() {  # exit code 1 and the status asked for
  local out="$work/fail.out"
  timeout 60 "$greeter" call --target "$target1" -n 1 --metadata x-fail-code=14 >"$out"
  [[ $? == 1 ]] && grep -qx '#1 - error: UNAVAILABLE failing as asked' "$out"
}

python_client() {
  timeout 120 /usr/bin/python3 "$here/python_client.py" --target "$target1" -n 8 \
    >"$work/python.json" && json_ok "$work/python.json" 8
}

node_client() {
  timeout 120 node "$here/node/client.js" --target "$target1" -n 8 >"$work/node.json" &&
    json_ok "$work/node.json" 8
}

stats_nothing_cancelled() {
  timeout 30 "$greeter" stats --target "$target1" | grep -qE '^calls=[0-9]+ cancelled=0 '
}

check "greeter call over one channel" call_six
check "second greeter answers with its own id" call_second
check "greeter call fails with the status asked for" call_failing
check "python client descriptor matches helloworld.proto" \
  /usr/bin/python3 "$here/python_client.py" --check-proto "$proto"
check "python client" python_client
if [[ -d $here/node/node_modules ]]; then
  check "node client" node_client
else
  echo "SKIP node client: run 'npm ci --prefix tests/interop/node' first"
fi
check "stats: every call completed, none cancelled" stats_nothing_cancelled

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
