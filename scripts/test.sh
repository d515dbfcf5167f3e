#!/usr/bin/env bash
# Runs every *.test.ts under packages/*/test with Node's test runner (through tsx); then, on x86-64,
# the native kernel tests, the export tests and the teacher cache tests again on the AVX2 code paths
# (ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN's kernels and, through the addon loader, selects the
# x86-64-v3 build of Retort's own loops), so a machine with AVX-512 also checks what an AVX2-only
# CPU runs; then the type check and the linter. Arguments narrow the run to files whose path contains
# one of them (no second pass, no type check or lint).
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
# Workspace packages resolve to their TypeScript sources (the "retort-source" condition of their
# package.json exports), not to the compiled dist/ that a published package uses.
export NODE_OPTIONS="--conditions=retort-source${NODE_OPTIONS:+ $NODE_OPTIONS}"
# Every test process fails if it imported the native backend but the addon did not load.
run_tests() { node --import tsx --import ./scripts/test-require-native.mjs --test --test-reporter=spec "$@"; }
run_tests "${files[@]}"
if [ "$#" -eq 0 ]; then
  if [ "$(uname -m)" = x86_64 ]; then
    avx2=()
    for f in "${files[@]}"; do
      case "$f" in
        packages/backend-native/test/* | packages/retort/test/export/* | *teacher-cache*) avx2+=("$f") ;;
      esac
    done
    echo "== second pass on the AVX2 paths: ONEDNN_MAX_CPU_ISA=AVX2, ${#avx2[@]} files =="
    ONEDNN_MAX_CPU_ISA=AVX2 run_tests "${avx2[@]}"
  fi
  npx tsc -p .
  npx biome check .
fi
