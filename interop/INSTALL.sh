#!/usr/bin/env bash
# Installs what the interop tests need and a fresh machine lacks, and nothing else:
# Debian's python3-jwt, python3-cryptography and python3-jwcrypto for /usr/bin/python3,
# and the jose package (exact version in node/package-lock.json) in node/node_modules.
# Node.js 20 or later must already be on PATH. Safe to run again: it only checks then.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null \
  || need_apt+=(python3-jwt python3-cryptography)
/usr/bin/python3 -c 'import jwcrypto' 2>/dev/null || need_apt+=(python3-jwcrypto)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "interop: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v node >/dev/null; then
  echo "interop: node (20 or later) is not on PATH" >&2
  exit 1
fi
want=$(node -p "require('./node/package-lock.json').packages['node_modules/jose'].version")
have=$(node -p "require('./node/node_modules/jose/package.json').version" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "interop: installing jose $want"
  (cd node && npm ci --no-audit --no-fund --silent)
fi
