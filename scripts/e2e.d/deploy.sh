#!/usr/bin/env bash
# The service recipes users copy: docs/deploy/tinysse.service (systemd) and
# docs/deploy/openwrt-init (procd). Run by scripts/e2e with TINYSSE_BIN,
# E2E_DIR and E2E_PIDS set. Prints one ok/FAIL line per check.
set -euo pipefail
cd "$(dirname "$0")/../.."

UNIT=docs/deploy/tinysse.service
INIT=docs/deploy/openwrt-init
WORK=$E2E_DIR/deploy
rm -rf "$WORK"
mkdir -p "$WORK" "$E2E_DIR/logs"
failed=0
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# No curl may hang: 10 s unless a call sets its own --max-time (the last one wins).
curl() { command curl --max-time 10 "$@"; }
ok() { printf 'ok   %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: expected %s, got %s\n' "$1" "$2" "$3"; }
one_line() { tr '\n' ' ' | cut -c1-400; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# replace FILE FROM TO: literal replacement that must happen exactly once.
replace() {
    python3 - "$@" <<'PY'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"{path}: {old!r} occurs {text.count(old)} times, expected once")
open(path, "w").write(text.replace(old, new))
PY
}
wait_healthy() { # URL: up to 5 s
    local _
    for _ in $(seq 100); do curl -fs "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}

# --- systemd ---------------------------------------------------------------

name="systemd: docs/deploy/tinysse.service verifies and is hardened (DynamicUser, NoNewPrivileges, ProtectSystem, ...)"
missing=""
for directive in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    CapabilityBoundingSet= RestrictAddressFamilies= SystemCallFilter=@system-service MemoryDenyWriteExecute=yes; do
    grep -q "^$directive" "$UNIT" || missing+="$directive "
done
cp "$UNIT" "$WORK/tinysse.service"
replace "$WORK/tinysse.service" "ExecStart=/usr/local/bin/tinysse " "ExecStart=$TINYSSE_BIN "
if [ -n "$missing" ]; then
    fail "$name" "every hardening directive" "missing: $missing"
elif ! command -v systemd-analyze >/dev/null; then
    ok "$name (systemd-analyze not installed: directives checked only)"
elif ! systemd-analyze verify "$WORK/tinysse.service" >"$WORK/verify.out" 2>&1; then
    fail "$name" "systemd-analyze verify to pass" "$(one_line <"$WORK/verify.out")"
elif [ -s "$WORK/verify.out" ]; then
    fail "$name" "no warnings from systemd-analyze verify" "$(one_line <"$WORK/verify.out")"
else
    exposure=$(systemd-analyze security --offline=yes "$WORK/tinysse.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for tinysse.service: \([0-9.]*\).*/\1/p' || true)
    if [ -n "$exposure" ] && python3 -c "import sys; sys.exit(float('$exposure') > 2.0)"; then
        ok "$name (exposure $exposure)"
    elif [ -z "$exposure" ]; then
        ok "$name (systemd-analyze security --offline not supported here)"
    else
        fail "$name" "systemd-analyze security exposure at most 2.0" "$exposure"
    fi
fi

# The unit's own command line, with its credential, as systemd would run it.
exec_line=$(sed -n 's/^ExecStart=//p' "$WORK/tinysse.service")
port=$(free_port)
mkdir -p "$WORK/credentials"
printf 'unit-token\n' >"$WORK/credentials/publish-token"   # a trailing newline, as `base64` writes
cmd=${exec_line//'${CREDENTIALS_DIRECTORY}'/$WORK/credentials}
cmd=${cmd//127.0.0.1:8080/127.0.0.1:$port}

name="systemd: the unit's ExecStart runs; publishing needs the token from its credential"
if [[ $exec_line != *'--listen 127.0.0.1:8080 '* ]]; then
    fail "$name" "ExecStart listening on 127.0.0.1:8080 (as nginx.conf expects)" "$exec_line"
else
    read -ra argv <<<"$cmd"
    strace_out=$WORK/strace.out
    if command -v strace >/dev/null; then
        strace -f -qq -o "$strace_out" "${argv[@]}" 2>>"$E2E_DIR/logs/tinysse-unit.log" &
    else
        "${argv[@]}" 2>>"$E2E_DIR/logs/tinysse-unit.log" &
    fi
    unit_pid=$!
    pids+=("$unit_pid")
    echo "$unit_pid" >>"$E2E_PIDS"
    base=http://127.0.0.1:$port
    if wait_healthy "$base"; then
        pgrep -P "$unit_pid" -x tinysse >>"$E2E_PIDS" || true
    fi
    if ! wait_healthy "$base"; then
        fail "$name" "the server up within 5 s" "$(tail -3 "$E2E_DIR/logs/tinysse-unit.log" | one_line)"
    else
        # A subscriber and a heartbeat-free publish round, so that strace sees a stream's syscalls.
        command curl -sS -N --max-time 2 "$base/events" >"$WORK/unit-sub.out" 2>/dev/null &
        sub=$!
        sleep 0.3
        without=$(curl -s -o /dev/null -w '%{http_code}' -d data=x "$base/publish")
        with=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer unit-token' -d data=from-unit "$base/publish")
        wait "$sub" || true
        if [ "$without" != 401 ] || [[ $with != *' 200' ]] || ! grep -q '^data: from-unit$' "$WORK/unit-sub.out"; then
            fail "$name" "401 without the token, 200 with it, the event delivered" \
                "without: $without, with: $with, stream: $(one_line <"$WORK/unit-sub.out")"
        else
            ok "$name"
        fi
    fi
    # SIGTERM to tinysse itself (under strace, its child: strace holds off SIGTERM while it runs a command).
    server_pid=$(pgrep -P "$unit_pid" -x tinysse || echo "$unit_pid")
    kill -TERM "$server_pid" 2>/dev/null || true
    timeout 5 tail --pid="$unit_pid" -f /dev/null || kill -KILL "$server_pid" "$unit_pid" 2>/dev/null || true
    wait "$unit_pid" 2>/dev/null || true

    name="systemd: every system call tinysse made is allowed by the unit's SystemCallFilter"
    if ! command -v strace >/dev/null || ! command -v systemd-analyze >/dev/null; then
        ok "$name (strace or systemd-analyze not installed: not checked)"
    else
        # Allowed: the unit's SystemCallFilter= sets, expanded (they nest), minus the ~ ones.
        used=$(grep -oE '^[0-9]+ +[a-z_0-9]+\(' "$strace_out" | sed -E 's/^[0-9]+ +//; s/\($//' | sort -u)
        bad=$(systemd-analyze syscall-filter 2>/dev/null | python3 -c '
import sys
groups, current = {}, None
for line in sys.stdin:
    if line.startswith("@"):
        current = groups.setdefault(line.strip(), [])
    elif line.startswith("    ") and not line.strip().startswith("#") and current is not None:
        current.append(line.strip())
def expand(name, seen=()):
    if not name.startswith("@"):
        return {name}
    out = set()
    for item in groups.get(name, []):
        if item not in seen:
            out |= expand(item, seen + (name,))
    return out
allowed, denied = set(), set()
for line in open(sys.argv[1]):
    if line.startswith("SystemCallFilter="):
        value = line.split("=", 1)[1].strip()
        target = denied if value.startswith("~") else allowed
        for name in value.lstrip("~").split():
            target |= expand(name)
used = set(sys.argv[2].split())
print(" ".join(sorted(used - (allowed - denied))))
' "$UNIT" "$used")
        if [ -z "$used" ]; then
            fail "$name" "a strace log" "nothing in $strace_out"
        elif [ -n "$bad" ]; then
            fail "$name" "only allowed system calls" "blocked ones used: $bad"
        else
            ok "$name ($(wc -w <<<"$used") distinct calls)"
        fi
    fi
fi

# --- OpenWrt procd -----------------------------------------------------------

name="openwrt: docs/deploy/openwrt-init parses and registers 'pipeline' with procd (respawn)"
shells=(sh)
command -v busybox >/dev/null && shells+=("busybox sh")
syntax=""
for shell in "${shells[@]}"; do
    $shell -n "$INIT" 2>>"$WORK/syntax.err" || syntax+="[$shell] "
done
# procd's shell API, stubbed: record what the script asks procd to run.
cat >"$WORK/procd-stubs.sh" <<'EOF'
procd_open_instance() { echo "open_instance" >>"$PROCD_LOG"; }
procd_set_param() { echo "set_param $*" >>"$PROCD_LOG"; }
procd_close_instance() { echo "close_instance" >>"$PROCD_LOG"; }
EOF
export PROCD_LOG=$WORK/procd.log
: >"$PROCD_LOG"
sh -c '. "$1"; initscript=/etc/init.d/tinysse; . "$2"; start_service' _ "$WORK/procd-stubs.sh" "$INIT"
got=$(one_line <"$PROCD_LOG")
if [ -n "$syntax" ]; then
    fail "$name" "no syntax errors" "$syntax: $(one_line <"$WORK/syntax.err")"
elif [[ $got != "open_instance set_param command /etc/init.d/tinysse pipeline "*"set_param respawn "*"close_instance " ]]; then
    fail "$name" "open_instance, command /etc/init.d/tinysse pipeline, respawn, close_instance" "$got"
elif ! grep -q '^USE_PROCD=1$' "$INIT" || ! grep -q '^EXTRA_COMMANDS="pipeline"$' "$INIT"; then
    fail "$name" "USE_PROCD=1 and EXTRA_COMMANDS=\"pipeline\"" "$(grep -E '^(USE_PROCD|EXTRA_COMMANDS)=' "$INIT" | one_line)"
else
    ok "$name"
fi

name="openwrt: the logread -f | tinysse serve --stdin pipeline publishes log lines and stops on SIGTERM"
port=$(free_port)
mkdir -p "$WORK/bin"
# A stand-in for OpenWrt's logread -f: a syslog line every 100 ms.
cat >"$WORK/bin/logread" <<'EOF'
#!/bin/sh
[ "$1" = -f ] || exit 2
n=0
while [ "$n" != "${LOGREAD_LINES:-forever}" ]; do
    n=$((n + 1))
    echo "Thu Jan  1 00:00:00 2026 daemon.info dnsmasq[1]: query $n from 192.168.1.2"
    sleep 0.1
done
EOF
chmod +x "$WORK/bin/logread"
cp "$INIT" "$WORK/openwrt-init"
replace "$WORK/openwrt-init" "PROG=/usr/bin/tinysse" "PROG=$TINYSSE_BIN"
replace "$WORK/openwrt-init" "LISTEN=0.0.0.0:8080" "LISTEN=127.0.0.1:$port"
replace "$WORK/openwrt-init" "TOKEN_FILE=/etc/tinysse/token" "TOKEN_FILE=$WORK/token"
replace "$WORK/openwrt-init" "FIFO=/var/run/tinysse.logread" "FIFO=$WORK/logread.fifo"
printf 'router-token\n' >"$WORK/token"
shell=${shells[-1]}
PATH=$WORK/bin:$PATH $shell -c '. "$1"; pipeline' _ "$WORK/openwrt-init" 2>>"$E2E_DIR/logs/tinysse-openwrt.log" &
pipe_pid=$!
pids+=("$pipe_pid")
echo "$pipe_pid" >>"$E2E_PIDS"
base=http://127.0.0.1:$port
if ! wait_healthy "$base"; then
    fail "$name" "tinysse up within 5 s" "$(tail -3 "$E2E_DIR/logs/tinysse-openwrt.log" | one_line)"
else
    children=$(pgrep -P "$pipe_pid" | tr '\n' ' ' || true)
    descendants="$children $(for c in $children; do pgrep -P "$c" || true; done | tr '\n' ' ')"
    curl -sS -N --max-time 1.5 "$base/events?topic=syslog" >"$WORK/syslog.out" 2>/dev/null || true
    lines=$(grep -c '^data: .* daemon.info dnsmasq\[1\]: query [0-9]* from 192.168.1.2$' "$WORK/syslog.out" || true)
    denied=$(curl -s -o /dev/null -w '%{http_code}' -d data=x "$base/publish")
    allowed=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer router-token' -d data=x "$base/publish")
    kill -TERM "$pipe_pid"
    stopped=no
    for _ in $(seq 60); do
        left=""
        for p in $pipe_pid $descendants; do kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" | cut -c1)" != Z ] && left+="$p "; done
        [ -z "$left" ] && { stopped=yes; break; }
        sleep 0.1
    done
    if ((lines < 5)); then
        fail "$name" "at least 5 log lines as events in 1.5 s" "$lines: $(head -c 300 "$WORK/syslog.out" | one_line)"
    elif [ "$denied" != 401 ] || [ "$allowed" != 200 ]; then
        fail "$name" "HTTP publish 401 without the token file's token, 200 with it" "$denied / $allowed"
    elif [ "$stopped" != yes ]; then
        fail "$name" "the shell, logread and tinysse gone within 6 s of SIGTERM" "still running: $(ps -o pid=,args= -p "${left// /,}" | one_line)"
    elif [ -e "$WORK/logread.fifo" ]; then
        fail "$name" "the FIFO removed" "$WORK/logread.fifo left behind"
    else
        # When logread ends (the log daemon restarted), the instance must end
        # too, so that procd respawns it instead of serving a silent stream.
        LOGREAD_LINES=3 PATH=$WORK/bin:$PATH $shell -c '. "$1"; pipeline' _ "$WORK/openwrt-init" \
            2>>"$E2E_DIR/logs/tinysse-openwrt.log" &
        pipe_pid=$!
        pids+=("$pipe_pid")
        echo "$pipe_pid" >>"$E2E_PIDS"
        if timeout 6 tail --pid="$pipe_pid" -f /dev/null; then
            ok "$name ($lines lines in 1.5 s, under $shell)"
        else
            fail "$name" "the pipeline to end within 6 s of logread ending" "still running"
        fi
    fi
fi

exit $((failed > 0))
