#!/usr/bin/env bash
# bench/run.sh — `probe` against its peers, side by side in one run on this machine,
# against the same sandbox endpoints on loopback. Prints a Markdown table (also written to
# target/bench/results.md); docs/benchmarks.md quotes one run and says what it means.
#
#   bench/run.sh              # installs the peers if missing, builds, measures (~10 min)
#   BENCH_QUICK=1 bench/run.sh   # smaller counts, a minute or two: to check the script
#
# Knobs (environment): N, C (throughput requests and concurrency), RUNS (hyperfine runs),
# FIDELITY_RUNS, SCALE (sample counts for the memory check), BENCH_NO_INSTALL=1,
# BENCH_NO_FLOOR=1 (skip building bench/floor, the HTTP-client baseline).
#
# Everything it starts (sandboxes, blackbox_exporter) listens on 127.0.0.1 only and is
# stopped on exit, by process id.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/target/bench}
LIB="python3 $ROOT/bench/lib.py"

if [[ -n ${BENCH_QUICK:-} ]]; then
    N=${N:-5000} C=${C:-16} RUNS=${RUNS:-3} FIDELITY_RUNS=${FIDELITY_RUNS:-1}
    SCALE=${SCALE:-"1000 10000 100000"} COLD_RUNS=${COLD_RUNS:-10}
    CRED=${CRED:-"1 10 100"} F20=${F20:-500} F200=${F200:-100} BB20=${BB20:-50} BB200=${BB200:-20}
else
    N=${N:-50000} C=${C:-32} RUNS=${RUNS:-5} FIDELITY_RUNS=${FIDELITY_RUNS:-3}
    SCALE=${SCALE:-"1000 100000 1000000"} COLD_RUNS=${COLD_RUNS:-30}
    CRED=${CRED:-"1 100 1000"} F20=${F20:-2000} F200=${F200:-400} BB20=${BB20:-300} BB200=${BB200:-100}
fi
# Fidelity: workers per tool; probe --rate runs the same workers at half their capacity.
FC=${FC:-10}

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Peers: Debian packages and two crates, installed only when missing.
install_peers() {
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    local need=()
    command -v hyperfine >/dev/null || need+=(hyperfine)
    command -v wrk >/dev/null || need+=(wrk)
    command -v hey >/dev/null || need+=(hey)
    command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    [[ -x /usr/bin/time ]] || need+=(time)
    if ! hurl --version 2>/dev/null | grep -q '^hurl 8\.0\.1'; then
        need+=(libcurl4-openssl-dev libxml2-dev libclang-dev pkg-config)
    fi
    if ((${#need[@]})); then
        log "installing ${need[*]}"
        $sudo apt-get update -qq </dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${need[@]}" </dev/null >&2
    fi
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    if ! command -v oha >/dev/null; then
        log "cargo install --locked oha"
        cargo install --locked oha >&2
    fi
    if ! hurl --version 2>/dev/null | grep -q '^hurl 8\.0\.1'; then
        log "cargo install --locked hurl@8.0.1"
        cargo install --locked hurl@8.0.1 >&2
    fi
}

[[ -n ${BENCH_NO_INSTALL:-} ]] || install_peers
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log "cargo build --release --locked"
cargo build --release --locked >&2
PROBE=$ROOT/target/release/probe
# The HTTP client floor (bench/floor): same reqwest as probe, and bare hyper.
FLOOR=""
if [[ -z ${BENCH_NO_FLOOR:-} ]]; then
    log "building bench/floor"
    CARGO_TARGET_DIR=$ROOT/target/bench-floor cargo build --release --locked \
        --manifest-path bench/floor/Cargo.toml >&2
    FLOOR=$ROOT/target/bench-floor/release/bench-floor
fi
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------
# Background processes: started here, stopped here, by pid.
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_for() { # URL
    local i
    for i in $(seq 1 200); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "bench: $1 did not come up" >&2
    return 1
}

# start_sandbox NAME [FAULTS]: sets URL_<NAME> and CFG_<NAME>.
start_sandbox() {
    local name=$1 faults=${2:-} port dir
    port=$($LIB free-port)
    dir=$OUT/sandbox-$name
    local args=(sandbox --listen "127.0.0.1:$port" --state-dir "$dir")
    [[ -z $faults ]] || args+=(--faults "$faults")
    "$PROBE" "${args[@]}" >"$OUT/sandbox-$name.log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$port/iap/health"
    printf -v "URL_$name" '%s' "http://127.0.0.1:$port/iap/health"
    printf -v "CFG_$name" '%s' "$dir/probe.toml"
}

for ms in 20 200; do
    printf '[[route]]\npath = "/iap/health"\nlatency = "%sms"\n' "$ms" >"$OUT/faults-$ms.toml"
done
log "starting sandboxes (plain, +20 ms, +200 ms on /iap/health)"
start_sandbox plain
start_sandbox l20 "$OUT/faults-20.toml"
start_sandbox l200 "$OUT/faults-200.toml"

TABLE=$OUT/results.md
: >"$TABLE"
emit() { printf '%s\n' "$*" | tee -a "$TABLE"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

emit "# probe vs peers — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
emit ""
emit "probe $("$PROBE" --version | cut -d' ' -f2), $(oha --version), hey (Debian $(dpkg-query -W -f='${Version}' hey)), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(hurl --version | head -1 | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), blackbox_exporter $(dpkg-query -W -f='${Version}' prometheus-blackbox-exporter), $(hyperfine --version)"

# ---------------------------------------------------------------------------------------
log "1. throughput: $N requests, $C concurrent, $RUNS rounds"
P_RUN=("$PROBE" run --config "$CFG_plain" --probe health --format json)
# Whole-process wall clock for the tools that take a request count.
hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/throughput.json" \
    -n probe "${P_RUN[*]} --iterations $N --concurrency $C" \
    -n oha "oha -n $N -c $C --no-tui $URL_plain" \
    -n hey "hey -n $N -c $C $URL_plain" >&2
declare -A RPS
while read -r name med _; do
    RPS[$name]=$(python3 -c "print(f'{$N / $med:.0f}')")
    printf -v "WALL_$name" '%s' "$med"
done < <($LIB hyperfine "$OUT/throughput.json")
# Each tool's own req/s (its clock, after start-up), interleaved rounds so that a burst
# of load from elsewhere on the machine hits every tool alike.
declare -A OWN=()
for r in $(seq "$RUNS"); do
    "${P_RUN[@]}" --iterations "$N" --concurrency "$C" >"$OUT/tp-probe-$r.json"
    OWN[probe]+="$(python3 -c "import json; r=json.load(open('$OUT/tp-probe-$r.json')); print(r['probes'][0]['iterations'] / r['duration_seconds'])") "
    oha -n "$N" -c "$C" --no-tui --output-format json "$URL_plain" >"$OUT/tp-oha-$r.json"
    OWN[oha]+="$($LIB oha "$OUT/tp-oha-$r.json" | cut -d' ' -f3) "
    hey -n "$N" -c "$C" "$URL_plain" >"$OUT/tp-hey-$r.txt"
    OWN[hey]+="$($LIB hey "$OUT/tp-hey-$r.txt" | cut -d' ' -f3) "
    wrk -t 2 -c "$C" -d 3s "$URL_plain" >"$OUT/tp-wrk-$r.txt"
    OWN[wrk]+="$($LIB wrk "$OUT/tp-wrk-$r.txt") "
    if [[ -x $FLOOR ]]; then
        for m in reqwest hyper; do
            OWN[floor-$m]+="$("$FLOOR" "$m" "$URL_plain" "$N" "$C" | cut -d' ' -f4) "
        done
    fi
done
declare -A MED
for t in "${!OWN[@]}"; do
    # shellcheck disable=SC2086
    MED[$t]=$($LIB median ${OWN[$t]})
done
best=$(python3 -c "print(max(${MED[oha]}, ${MED[hey]}, ${MED[wrk]}))")
best_wall=$(python3 -c "print(max(${RPS[oha]}, ${RPS[hey]}))")
emit ""
emit "## 1. Throughput — GET /iap/health, $N requests, $C concurrent, keep-alive"
emit ""
emit "| tool | own req/s (median of $RUNS) | vs best peer | whole-process wall (s) | N / wall | vs best peer |"
emit "| --- | ---: | ---: | ---: | ---: | ---: |"
for t in probe oha hey; do
    w=WALL_$t
    emit "| $t | $(printf '%.0f' "${MED[$t]}") | $(ratio "${MED[$t]}" "$best") | $(printf '%.3f' "${!w}") | ${RPS[$t]} | $(ratio "${RPS[$t]}" "$best_wall") |"
done
emit "| wrk (-t2, 3 s runs) | $(printf '%.0f' "${MED[wrk]}") | $(ratio "${MED[wrk]}" "$best") | — | — | — |"
if [[ -n ${MED[floor-reqwest]:-} ]]; then
    emit "| *floor: probe's reqwest client, no probe logic* | $(printf '%.0f' "${MED[floor-reqwest]}") | $(ratio "${MED[floor-reqwest]}" "$best") | — | — | — |"
    emit "| *floor: hyper conn per worker (oha's way)* | $(printf '%.0f' "${MED[floor-hyper]}") | $(ratio "${MED[floor-hyper]}" "$best") | — | — | — |"
fi
emit ""
emit "Goal: probe >= 0.90 of the best peer → $(ratio "${MED[probe]}" "$best") (own req/s), $(ratio "${RPS[probe]}" "$best_wall") (wall, vs oha/hey)"

# ---------------------------------------------------------------------------------------
log "2. fidelity: injected 20 ms and 200 ms, $FIDELITY_RUNS runs each"
BB_PORT=$($LIB free-port)
cat >"$OUT/blackbox.yml" <<'EOF'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
prometheus-blackbox-exporter --config.file="$OUT/blackbox.yml" \
    --web.listen-address="127.0.0.1:$BB_PORT" >"$OUT/blackbox.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$BB_PORT/metrics"

emit ""
emit "## 2. Fidelity — sandbox injects a fixed latency on /iap/health (0: none); reported p50 / p99 (ms)"
emit ""
emit "| injected | tool | samples | p50 | p99 | p50 − injected |"
emit "| ---: | --- | ---: | ---: | ---: | ---: |"
F0=$F20 BB0=$BB20 CFG_l0=$CFG_plain URL_l0=$URL_plain
for ms in 0 20 200; do
    cfg=CFG_l$ms url=URL_l$ms
    n=F$ms bbn=BB$ms
    # Half the workers' capacity (0 ms: a fixed 1000/s).
    rate=$(python3 -c "print($FC * 1000 / $ms / 2 if $ms else 1000.0)")
    declare -A P50=() P99=() CNT=()
    for run in $(seq "$FIDELITY_RUNS"); do
        "$PROBE" run --config "${!cfg}" --probe health --format json \
            --iterations "${!n}" --concurrency "$FC" >"$OUT/fid-$ms-probe-$run.json"
        read -r a b c < <($LIB probe "$OUT/fid-$ms-probe-$run.json" health)
        P50[probe]+="$a " P99[probe]+="$b " CNT[probe]=$c
        "$PROBE" run --config "${!cfg}" --probe health --format json \
            --iterations "${!n}" --concurrency "$FC" --rate "$rate" >"$OUT/fid-$ms-rate-$run.json"
        read -r a b c < <($LIB probe "$OUT/fid-$ms-rate-$run.json" health)
        P50[rate]+="$a " P99[rate]+="$b " CNT[rate]=$c
        oha -n "${!n}" -c "$FC" --no-tui --output-format json "${!url}" >"$OUT/fid-$ms-oha-$run.json"
        read -r a b _ < <($LIB oha "$OUT/fid-$ms-oha-$run.json")
        P50[oha]+="$a " P99[oha]+="$b " CNT[oha]=${!n}
        hey -n "${!n}" -c "$FC" "${!url}" >"$OUT/fid-$ms-hey-$run.txt"
        read -r a b _ < <($LIB hey "$OUT/fid-$ms-hey-$run.txt")
        P50[hey]+="$a " P99[hey]+="$b " CNT[hey]=${!n}
        : >"$OUT/fid-$ms-bb-$run.txt"
        for _ in $(seq "${!bbn}"); do
            curl -sf "http://127.0.0.1:$BB_PORT/probe?module=http_2xx&target=${!url}" |
                awk '/^probe_duration_seconds /{print $2}' >>"$OUT/fid-$ms-bb-$run.txt"
        done
        read -r a b c < <($LIB samples "$OUT/fid-$ms-bb-$run.txt")
        P50[bb]+="$a " P99[bb]+="$b " CNT[bb]=$c
    done
    for t in probe rate oha hey bb; do
        label=$t
        [[ $t == rate ]] && label="probe --rate $rate/s"
        [[ $t == probe ]] && label="probe (closed loop)"
        [[ $t == bb ]] && label="blackbox_exporter probe_duration_seconds"
        # shellcheck disable=SC2086
        p50=$($LIB median ${P50[$t]}) p99=$($LIB median ${P99[$t]})
        emit "| $ms ms | $label | ${CNT[$t]} | $(printf '%.2f' "$p50") | $(printf '%.2f' "$p99") | $(python3 -c "print(f'{$p50 - $ms:+.2f}')") |"
    done
done
emit ""
emit "Workers: $FC per tool (blackbox_exporter: one probe at a time). Medians of $FIDELITY_RUNS runs."

# ---------------------------------------------------------------------------------------
log "3. cold one-shot: $COLD_RUNS runs each"
cat >"$OUT/health.hurl" <<EOF
GET $URL_plain
HTTP 200
[Asserts]
jsonpath "\$.status" == "ok"
EOF
hyperfine -N --style basic --warmup 3 --runs "$COLD_RUNS" --export-json "$OUT/cold.json" \
    -n probe "${P_RUN[*]}" \
    -n curl "curl -sf -o /dev/null $URL_plain" \
    -n hurl "hurl --test $OUT/health.hurl" >&2
declare -A COLD RSS
while read -r name med _; do COLD[$name]=$med; done < <($LIB hyperfine "$OUT/cold.json")
rss_of() { # command... → median peak RSS (KiB) of 5 runs
    local v=() i
    for i in 1 2 3 4 5; do
        /usr/bin/time -f %M -o "$OUT/rss.txt" "$@" >/dev/null 2>&1
        v+=("$(tail -1 "$OUT/rss.txt")")
    done
    $LIB median "${v[@]}"
}
RSS[probe]=$(rss_of "${P_RUN[@]}")
RSS[curl]=$(rss_of curl -sf -o /dev/null "$URL_plain")
RSS[hurl]=$(rss_of hurl --test "$OUT/health.hurl")
emit ""
emit "## 3. Cold one-shot — one single-step health check, whole process"
emit ""
emit "| tool | median wall (ms) | vs probe | peak RSS (MiB, median of 5) |"
emit "| --- | ---: | ---: | ---: |"
for t in probe curl hurl; do
    emit "| $t | $(python3 -c "print(f'{${COLD[$t]} * 1e3:.1f}')") | $(ratio "${COLD[$t]}" "${COLD[probe]}") | $(python3 -c "print(f'{${RSS[$t]} / 1024:.1f}')") |"
done
emit ""
emit "Goal: probe faster than hurl → hurl / probe = $(ratio "${COLD[hurl]}" "${COLD[probe]}")"

# ---------------------------------------------------------------------------------------
log "4. scale: peak RSS at $SCALE samples"
emit ""
emit "## 4. Scale — peak RSS of \`probe run --probe health --iterations N --concurrency $C\`"
emit ""
emit "| samples | peak RSS (MiB) | wall (s) | req/s |"
emit "| ---: | ---: | ---: | ---: |"
for n in $SCALE; do
    /usr/bin/time -f '%M %e' -o "$OUT/scale-$n.time" \
        "${P_RUN[@]}" --iterations "$n" --concurrency "$C" >"$OUT/scale-$n.json"
    read -r kib secs <"$OUT/scale-$n.time"
    read -r _ _ samples < <($LIB probe "$OUT/scale-$n.json" health)
    emit "| $samples | $(python3 -c "print(f'{$kib / 1024:.1f}')") | $secs | $(python3 -c "print(f'{$samples / $secs:.0f}')") |"
done

# ---------------------------------------------------------------------------------------
log "5. credential cost"
emit ""
emit "## 5. Credential cost — ios-purchase + android-purchase, 10 workers each"
emit ""
emit "| iterations per probe | App Store JWT signatures | Google token fetches | probes passed |"
emit "| ---: | ---: | ---: | --- |"
for n in $CRED; do
    RUST_LOG=iap_probe=info "$PROBE" run --config "$CFG_plain" --probe ios-purchase \
        --probe android-purchase --iterations "$n" --concurrency 10 --format json \
        >"$OUT/cred-$n.json" 2>"$OUT/cred-$n.log" || true
    read -r sig fetch _ < <($LIB credentials "$OUT/cred-$n.log")
    verdict=$(python3 -c "import json; r=json.load(open('$OUT/cred-$n.json')); print(', '.join(p['name']+' '+p['verdict'] for p in r['probes']))")
    emit "| $n | $sig | $fetch | $verdict |"
done
emit ""
emit "Load after: $(cut -d' ' -f1-3 /proc/loadavg). Raw outputs: $OUT"
