#!/usr/bin/env bash
# `serve` at rest: resident memory of the release binary on SQLite, read from /proc/<pid>/status.
# First `serve --demo` fills a database (and is measured once its first passes are done), then a
# second `serve` on that database, without --demo, is measured after its first scheduler passes and
# 50 page requests. Usage: tests/benches/idle_rss.sh [binary] (default target/release/bihuan; build it
# first with `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-target/release/bihuan}")
port=${BENCH_PORT:-18089}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
resident() {
  awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s %.1f MiB  ", $1, $2 / 1024 } END { print "" }' "/proc/$1/status"
}
cd "$dir"
"$bin" serve --demo --db "sqlite://$dir/demo.db?mode=rwc" --listen "127.0.0.1:$port" >"$dir/demo.log" 2>&1 &
pid=$!
sleep 30
printf 'serve --demo, after filling:  '; resident "$pid"
kill "$pid"; wait "$pid" || true
"$bin" serve --db "sqlite://$dir/demo.db?mode=rwc" --listen "127.0.0.1:$port" >"$dir/serve.log" 2>&1 &
pid=$!
sleep 30
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/login"; done
sleep 5
printf 'serve, at rest:               '; resident "$pid"
kill "$pid"; wait "$pid" || true
