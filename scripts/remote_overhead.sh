#!/usr/bin/env bash
# Per-step cost of training through `attnlab serve` on the loopback interface against
# the same CPU backend in-process, for the shipped experiments' model sizes, and the
# bytes a step moves over the wire (both directions, from /proc/net/dev's `lo`).
# Usage: scripts/remote_overhead.sh [path/to/attnlab] [steps]
set -euo pipefail
bin="${1:-${CARGO_TARGET_DIR:-target}/release/attnlab}"
steps="${2:-60}"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --host 127.0.0.1 --port 0 --device cpu > "$work/serve.out" 2> "$work/serve.log" &
server=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
address=$(head -1 "$work/serve.out" | sed 's/.*listening on //')
lo_bytes() { awk '/^ *lo:/ { print $2 + $10 }' /proc/net/dev; }
steps_per_sec() { awk -v run="$1" '$1 == run || index($0, run " ") == 1 { for (i = 1; i <= NF; i++) if ($i == "finished") { print $(i + 4); exit } }'; }
printf '%-44s %10s %10s %9s %14s\n' "experiment / run" "local/s" "remote/s" "overhead" "KiB per step"
for spec in "dense_vs_local.toml:dense" "mqar_reach.toml:dense" "text_context.toml:dense" "long_sequences.toml:local w=32"; do
    file="${spec%%:*}"; run="${spec#*:}"
    local_rate=$("$bin" run "experiments/$file" --run "$run" --steps "$steps" --backend cpu --out "$work/l" --quiet 2>/dev/null | steps_per_sec "$run")
    before=$(lo_bytes)
    remote_rate=$("$bin" run "experiments/$file" --run "$run" --steps "$steps" --backend "remote:$address" --out "$work/r" --quiet 2>/dev/null | steps_per_sec "$run")
    after=$(lo_bytes)
    kib=$(awk -v b=$((after - before)) -v s="$steps" 'BEGIN { printf "%.1f", b / s / 1024 }')
    overhead=$(awk -v l="$local_rate" -v r="$remote_rate" 'BEGIN { printf "%.2fx", l / r }')
    printf '%-44s %10s %10s %9s %14s\n' "$file / $run" "$local_rate" "$remote_rate" "$overhead" "$kib"
done
