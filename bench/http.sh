#!/usr/bin/env bash
# JWKS requests per second and latency under wrk, keyd next to nginx serving the same
# bytes; keyd's peak memory; SIGUSR1 to the new kid being served; start-up to ready.
# Prints Markdown tables and replaces the "http" section of bench/results.md.
# Needs wrk and nginx (bench/INSTALL.sh). Takes about a minute and a half; extra
# arguments go to keydbench (e.g. -duration 10s -rounds 5).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in wrk nginx; do
  if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
    echo "bench: $tool is not installed; run bench/INSTALL.sh" >&2
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin"
go build -o bin/keyd ./cmd/keyd
go build -o bin/keydbench ./bench/keydbench
exec bin/keydbench http -keyd bin/keyd -results bench/results.md "$@"
