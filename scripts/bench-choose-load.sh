#!/bin/sh
# auto's choose phase idle, then beside three busy loops, in one run: prints JSON with both
# times, their ratio (goal: loaded <= 3.5 x idle; a fair share of 2 cores is ~2.5x), the
# threads the phase may use and the load before each part (`uptime`).
# The first auto run makes the cache (not timed); the timed runs resume from it, so their
# choose phase is the only long one. Extra arguments go to every `tlearn auto` run.
# usage: scripts/bench-choose-load.sh DATA OUT_DIR [tlearn auto args...] > bench-choose.json
set -eu
TLEARN=${TLEARN:-target/release/tlearn}
data=$1
out=$2
shift 2
mkdir -p "$out"
run() { # $1: name; prints the choose phase's seconds and the most threads tlearn had
	json=$out/$1.json
	shift
	"$TLEARN" auto --data "$data" --out "$out/auto" --no-finetune --quiet \
		--json "$json" "$@" >/dev/null 2>"$json.log" &
	pid=$!
	most=0
	while kill -0 "$pid" 2>/dev/null; do
		n=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
		[ "${n:-0}" -gt "$most" ] && most=$n
		sleep 0.5
	done
	wait "$pid"
	python3 -c 'import json,sys; print(next(p["seconds"] for p in json.load(open(sys.argv[1]))["phases"] if p["phase"] == "choose"))' "$json"
	echo "$most"
}
run "warm-$$" "$@" >/dev/null
load_idle=$(uptime)
idle=$(run "idle-$$" "$@")
pids=""
for _ in 1 2 3; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"
done
trap 'kill $pids 2>/dev/null' EXIT
load_busy=$(uptime)
loaded=$(run "loaded-$$" "$@")
kill $pids
trap - EXIT
python3 - "$idle" "$loaded" "$load_idle" "$load_busy" <<'PY'
import json, os, sys
(idle, idle_threads), (loaded, loaded_threads) = (a.split() for a in sys.argv[1:3])
idle, loaded = float(idle), float(loaded)
cores = len(os.sched_getaffinity(0))
print(json.dumps({
    "bench": "choose-under-load",
    "choose_idle_seconds": idle,
    "choose_loaded_seconds": loaded,
    "ratio": loaded / idle,
    "goal_ratio": 3.5,
    "busy_loops": 3,
    "cores": cores,
    "most_threads_of_tlearn": {"idle_run": int(idle_threads), "loaded_run": int(loaded_threads)},
    "uptime_before_idle": sys.argv[3].strip(),
    "uptime_before_loaded": sys.argv[4].strip(),
}, indent=2))
PY
