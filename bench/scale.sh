#!/usr/bin/env bash
# One keyd with 1,000 keysets on disk: start-up time, memory, one JWKS GET per keyset, a
# SIGUSR1 rotation sweep over all of them, and a restart. Prints a Markdown table and
# replaces the "scale" section of bench/results.md. Takes a minute or two; extra
# arguments go to keydbench (e.g. -keysets 200).
set -euo pipefail
cd "$(dirname "$0")/.."

go build -o bin/keyd ./cmd/keyd
go build -o bin/keydbench ./bench/keydbench
exec bin/keydbench scale -keyd bin/keyd -results bench/results.md "$@"
