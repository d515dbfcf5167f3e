#!/usr/bin/env bash
# Runs every *.test.ts under packages/*/test with Node's test runner (through tsx), then the type
# check and the linter. Arguments narrow the run to files whose path contains one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find packages -path '*/node_modules' -prune -o -path '*/test/*' -name '*.test.ts' -print | sort)
if [ "$#" -gt 0 ]; then
  sel=()
  for f in "${files[@]}"; do for pat in "$@"; do [[ "$f" == *"$pat"* ]] && sel+=("$f") && break; done; done
  files=("${sel[@]}")
fi
[ "${#files[@]}" -gt 0 ] || { echo "no test files found" >&2; exit 1; }
export RETORT_QUIET=1
node --import tsx --test --test-reporter=spec "${files[@]}"
if [ "$#" -eq 0 ]; then
  npx tsc -p .
  npx biome check .
fi
