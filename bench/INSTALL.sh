#!/usr/bin/env bash
# Installs the load generator and the reference server of bench/http.sh (Debian's wrk
# and nginx) if they are missing. The benchmark never uses an nginx service: it runs its
# own nginx in the foreground, on a loopback port and a temporary configuration, and
# stops it.
set -euo pipefail

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
