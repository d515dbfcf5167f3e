#!/usr/bin/env bash
# Runs the native kernel tests (packages/backend-native/test/*.test.ts, the tfjs-core op suite
# included) on the addon built with AddressSanitizer + UndefinedBehaviorSanitizer (make asan), and
# fails when a test fails or when any process (test files spawn children) writes a sanitizer report.
# Arguments narrow the run to test files whose path contains one of them, as in scripts/test.sh.
#
# Node is not instrumented, so the ASan runtime must be the first library in the process
# (LD_PRELOAD); the UBSan runtime comes in with the addon (it is among its needed libraries).
# isa.test.ts is left out: it disassembles the per-level builds and loads each level in a child,
# which RETORT_ADDON_PATH would point at this build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=packages/backend-native
start=$SECONDS
make -s -j"$(nproc)" -C "$pkg" asan

mapfile -t files < <(find "$pkg/test" -maxdepth 1 -name '*.test.ts' ! -name isa.test.ts | sort)
if [ "$#" -gt 0 ]; then
  sel=()
  for f in "${files[@]}"; do for pat in "$@"; do [[ "$f" == *"$pat"* ]] && sel+=("$f") && break; done; done
  files=("${sel[@]}")
fi
[ "${#files[@]}" -gt 0 ] || { echo "no test files found" >&2; exit 1; }

logs=$(mktemp -d "${TMPDIR:-/tmp}/retort-asan.XXXXXX")
asan_rt=$(gcc -print-file-name=libasan.so)
[ -e "$asan_rt" ] || { echo "no ASan runtime ($asan_rt): install libasan for this gcc" >&2; exit 1; }
# ASan reports go to files (one per process id), since a test that spawns a child keeps its stderr.
# UBSan's cannot: GCC's libubsan sets its log file through __sanitizer_set_report_path, which
# binds to libasan's copy, so UBSan ignores log_path and writes to stderr. They are found in the
# test output instead: the runner forwards each test file's stderr, and the two tests that spawn
# children (fallback, tfjs-suite) assert the child's exit status and print its stderr's tail, and
# a report ends the child with status 1. detect_leaks=0: V8 and Node free little at exit, so
# LeakSanitizer would report them, not the addon (leak.test.ts covers the addon's tensors and RSS).
# abort_on_error=0: status 1 rather than a core dump. detect_stack_use_after_return=1: the addon's
# frames move to fake stacks so a pointer to a dead local is caught (off by default in GCC 12).
asan_options="detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:log_path=$logs/asan"
ubsan_options="print_stacktrace=1:halt_on_error=1"

echo "== ${#files[@]} native test files on $pkg/build/asan/retort_native.node; sanitizer logs in $logs =="
set +e
LD_PRELOAD="$asan_rt${LD_PRELOAD:+ $LD_PRELOAD}" ASAN_OPTIONS="$asan_options" UBSAN_OPTIONS="$ubsan_options" \
  RETORT_ADDON_PATH="$PWD/$pkg/build/asan/retort_native.node" RETORT_QUIET=1 NODE_OPTIONS="--conditions=retort-source${NODE_OPTIONS:+ $NODE_OPTIONS}" \
  node --conditions=retort-source --import tsx --import ./scripts/test-require-native.mjs --test --test-reporter=spec "${files[@]}" 2>&1 |
  tee "$logs/tests.log"
rc=${PIPESTATUS[0]}
set -e

pattern='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
# One line per distinct report (a UBSan report can show twice in the output: forwarded, and in
# the failure summary).
mapfile -t reports < <(cat "$logs"/asan.* "$logs/tests.log" 2>/dev/null | grep -oE "($pattern).*" | sort -u)
for f in "$logs"/asan.* "$logs/tests.log"; do
  [ -e "$f" ] && grep -qE "$pattern" "$f" && { echo "== sanitizer output in $f =="; grep -m1 -A12 -E "$pattern" "$f"; }
done
field() { sed -n "s/^ℹ $1 \([0-9]*\)$/\1/p" "$logs/tests.log" | tail -1; }
echo "asan: tests $(field tests), passed $(field pass), failed $(field fail);" \
  "sanitizer reports ${#reports[@]}; $((SECONDS - start)) s; logs in $logs"
[ "$rc" -eq 0 ] && [ "${#reports[@]}" -eq 0 ]
