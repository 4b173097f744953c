#!/usr/bin/env bash
# curl against a real `tinysse serve`: the README's commands, and the upload
# forms curl uses (Expect: 100-continue, chunked). Run by scripts/e2e, with
# TINYSSE_BIN, E2E_DIR and E2E_PIDS set. Prints one ok/FAIL line per check.
set -euo pipefail

WORK=$E2E_DIR/curl
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
# A string with every control character visible, for messages.
show() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$1"; }
# SLURP: the whole file, trailing newlines included ($(...) would drop them).
slurp() { SLURP=$(cat "$1"; printf x); SLURP=${SLURP%x}; }
# The end of the subscriber's output, for messages.
tail_of() { show "$(tail -c "${2:-600}" "$1")"; }

# contains FILE TEXT SECONDS: wait until FILE contains TEXT (newlines and all).
contains() {
    local end=$((SECONDS + $3)) content
    while :; do
        content=$(cat "$1" 2>/dev/null; printf x)
        [[ ${content%x} == *"$2"* ]] && return 0
        ((SECONDS > end)) && return 1
        sleep 0.05
    done
}

# FRAME: the bytes tinysse must send for event ($1 id, $2 type or "", $3 data with LF line ends).
frame() {
    FRAME="id: $1"$'\n'
    [ -n "$2" ] && FRAME+="event: $2"$'\n'
    local rest=$3
    while [[ $rest == *$'\n'* ]]; do
        FRAME+="data: ${rest%%$'\n'*}"$'\n'
        rest=${rest#*$'\n'}
    done
    FRAME+="data: $rest"$'\n\n'
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$TINYSSE_BIN" serve --listen "127.0.0.1:$port" --heartbeat 30 2>>"$E2E_DIR/logs/tinysse-curl.log" &
pids+=($!)
echo $! >>"$E2E_PIDS"
for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

# One subscriber for the whole run, as in the README: curl -N.
command curl -sS -N -D "$WORK/sub.head" --max-time 60 "$base/events?topic=c" >"$WORK/sub.out" 2>"$WORK/sub.err" &
pids+=($!)

# expect_frame NAME ID TYPE DATA: the subscriber must receive exactly that frame.
expect_frame() {
    frame "$2" "$3" "$4"
    if contains "$WORK/sub.out" "$FRAME" 3; then
        return 0
    fi
    fail "$1" "the frame $(show "$FRAME") on the curl -N stream" "$(tail_of "$WORK/sub.out")"
    return 1
}

name="curl: curl -N subscribe: 200, event-stream headers, retry: first, events as sent"
if ! contains "$WORK/sub.out" $'retry: 3000\n\n' 3; then
    fail "$name" "'retry: 3000' and a blank line at once" "$(tail_of "$WORK/sub.out") $(cat "$WORK/sub.err")"
else
    head=$(tr -d '\r' <"$WORK/sub.head")
    missing=""
    for want in "HTTP/1.1 200 OK" "Content-Type: text/event-stream" "Cache-Control: no-cache" "X-Accel-Buffering: no"; do
        grep -qiF -- "$want" <<<"$head" || missing+="[$want] "
    done
    first=$(head -c 13 "$WORK/sub.out"; printf x)
    first=${first%x}
    if [ -n "$missing" ] || [ "$first" != $'retry: 3000\n\n' ]; then
        fail "$name" "headers $missing and the body starting with retry:" "$(show "$head") body $(show "$first")"
    else
        id=$(curl -sS --data-binary 'hello curl' -H 'Content-Type: text/plain' "$base/publish?topic=c")
        expect_frame "$name" "$id" "" "hello curl" && ok "$name"
    fi
fi

name="curl: form publish (-d, --data-urlencode) with topic and event"
data=$'a&b=c d+e%f ü\nsecond line'
id=$(curl -sS -d topic=c -d event=note --data-urlencode "data=$data" "$base/publish")
expect_frame "$name" "$id" note "$data" && ok "$name"

name="curl: --data-binary @file with Expect: 100-continue gets 100 at once"
for i in $(seq 1 200); do printf '%s line %03d: ünïcødé, then a tab\t and text\n' "$([ $((i % 7)) = 0 ] && printf ' ')" "$i"; done >"$WORK/notes.txt"
start=$(date +%s%N)
id=$(curl -sS -v --expect100-timeout 5 -H 'Expect: 100-continue' -H 'Content-Type: text/plain' \
    --data-binary @"$WORK/notes.txt" "$base/publish?topic=c&event=file" 2>"$WORK/expect.err")
ms=$((($(date +%s%N) - start) / 1000000))
if ! grep -q '^> Expect: 100-continue' "$WORK/expect.err" || ! grep -q '^< HTTP/1.1 100 Continue' "$WORK/expect.err"; then
    fail "$name" "curl to send Expect and get '100 Continue'" "$(grep -E '^[<>] ' "$WORK/expect.err" | tr '\r\n' '  ')"
elif ((ms > 2000)); then
    fail "$name" "the upload done well before curl's 5 s expect timeout" "$ms ms"
else
    slurp "$WORK/notes.txt"
    expect_frame "$name" "$id" file "$SLURP" && ok "$name"
fi

name="curl: chunked upload (Transfer-Encoding: chunked, and stdin in pieces with -T -)"
printf 'chunk body\n two\n' >"$WORK/chunk.txt"
id=$(curl -sS -v -H 'Transfer-Encoding: chunked' -H 'Content-Type: text/plain' \
    --data-binary @"$WORK/chunk.txt" "$base/publish?topic=c" 2>"$WORK/chunked.err")
if ! grep -q '^> Transfer-Encoding: chunked' "$WORK/chunked.err"; then
    fail "$name" "curl to send Transfer-Encoding: chunked" "$(grep -E '^> ' "$WORK/chunked.err" | tr '\r\n' '  ')"
elif expect_frame "$name" "$id" "" $'chunk body\n two\n'; then
    # Two chunks 300 ms apart, from a pipe: the body's size is unknown up front.
    id=$({ printf 'first piece, '; sleep 0.3; printf 'second piece'; } |
        curl -sS -v -T - -X POST -H 'Content-Type: text/plain' "$base/publish?topic=c" 2>"$WORK/stdin.err")
    if ! grep -q '^> Transfer-Encoding: chunked' "$WORK/stdin.err"; then
        fail "$name" "curl -T - to send chunked" "$(grep -E '^> ' "$WORK/stdin.err" | tr '\r\n' '  ')"
    else
        expect_frame "$name" "$id" "" "first piece, second piece" && ok "$name"
    fi
fi

name="curl: text/event-stream batch publish (README example)"
ids=$(printf 'data: one\n\nevent: tick\ndata: two\n' | curl -sS --data-binary @- \
    -H 'Content-Type: text/event-stream' "$base/publish?topic=c")
id1=$(sed -n 1p <<<"$ids")
id2=$(sed -n 2p <<<"$ids")
if [ "$(wc -l <<<"$ids")" != 2 ] || [ -z "$id2" ]; then
    fail "$name" "two ids, one per line" "$(show "$ids")"
else
    frame "$id1" "" one
    first=$FRAME
    frame "$id2" tick two
    if contains "$WORK/sub.out" "$first$FRAME" 3; then
        ok "$name"
    else
        fail "$name" "$(show "$first$FRAME") on the stream" "$(tail_of "$WORK/sub.out" 300)"
    fi
fi

name="curl: resume with -H 'Last-Event-ID: <id>' replays what came after it"
curl -sS -N --max-time 1 -H "Last-Event-ID: $id1" "$base/events?topic=c" >"$WORK/resume.out" 2>/dev/null || true
frame "$id2" tick two
want=$'retry: 3000\n\n'"$FRAME"
slurp "$WORK/resume.out"
if [ "$SLURP" != "$want" ]; then
    fail "$name" "$(show "$want")" "$(show "$SLURP")"
else
    ok "$name"
fi

name="curl: a bad topic gets 400 and a one-line reason (README example)"
got=$(curl -sS -i -d data=x -d topic='no spaces' "$base/publish" | tr -d '\r')
if ! grep -q '^HTTP/1.1 400 Bad Request$' <<<"$got" || ! grep -q '^bad topic: ' <<<"$got"; then
    fail "$name" "400 and 'bad topic: ...'" "$(show "$got")"
else
    ok "$name"
fi

exit $((failed > 0))
