#!/usr/bin/python3
"""`npm run fixtures:check` (dev-time; needs Debian's python3-torch): runs every fixture generator
(packages/*/test/fixtures/make_*.py) into a temporary folder and compares what it writes with the
committed JSON. Each generator also checks its own values a second way before writing (an
independent formula or the reference module run once), so a generator whose formula changed fails
there or here, never silently.

Values are compared with a relative tolerance of 1e-5 (the tests' own): fixtures computed
from float32 forwards (the zoo's logits, BatchNorm statistics) differ in the last digits with the
CPU's instruction set, as PyTorch picks its kernels by ISA. Strings, integers, shapes and list
lengths must match exactly. Exit status 1 on any difference, with the first differing paths.
"""
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-5


def compare(a, b, path, out):
    if len(out) >= 5:
        return
    if isinstance(b, dict):
        if not isinstance(a, dict) or sorted(a) != sorted(b):
            out.append(f"{path}: keys differ")
            return
        for k in b:
            compare(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            out.append(f"{path}: length {len(a) if isinstance(a, list) else '-'} vs {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", out)
    elif isinstance(b, bool) or isinstance(b, str) or b is None:
        if a != b:
            out.append(f"{path}: {a!r} vs {b!r}")
    elif isinstance(b, int) and isinstance(a, int):
        if a != b:
            out.append(f"{path}: {a} vs {b}")
    else:
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb) or math.isinf(fa) or math.isinf(fb):
            if not (fa == fb or (math.isnan(fa) and math.isnan(fb))):
                out.append(f"{path}: {fa} vs {fb}")
        elif abs(fa - fb) > RTOL * max(1.0, abs(fb)):
            out.append(f"{path}: {fa!r} vs {fb!r}")


def main():
    generators = sorted(glob.glob(os.path.join(ROOT, "packages", "*", "test", "fixtures", "make_*.py")))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for gen in generators:
            here = os.path.dirname(gen)
            before = set(os.listdir(tmp))
            env = dict(os.environ, RETORT_FIXTURE_OUT=tmp, OMP_NUM_THREADS="1")
            r = subprocess.run([sys.executable, gen], env=env, capture_output=True, text=True)
            name = os.path.relpath(gen, ROOT)
            if r.returncode != 0:
                print(f"FAIL {name}: exit {r.returncode}\n{r.stderr[-2000:]}")
                failed += 1
                continue
            written = sorted(set(os.listdir(tmp)) - before)
            if not written:
                print(f"FAIL {name}: wrote no file")
                failed += 1
            for f in written:
                committed = os.path.join(here, f)
                if not f.endswith(".json"):
                    # Binary fixtures (ONNX files) live in a folder beside their generator's name.
                    found = glob.glob(os.path.join(here, "*", f))
                    committed = found[0] if found else committed
                if not os.path.exists(committed):
                    print(f"FAIL {name}: {f} is not committed")
                    failed += 1
                    continue
                if not f.endswith(".json"):
                    with open(os.path.join(tmp, f), "rb") as fa, open(committed, "rb") as fb:
                        same = fa.read() == fb.read()
                    print(f"{'ok  ' if same else 'FAIL'} {name}: {f} {'identical' if same else 'differs in its bytes'}")
                    failed += 0 if same else 1
                    continue
                with open(os.path.join(tmp, f)) as fa, open(committed) as fb:
                    a, b = json.load(fa), json.load(fb)
                diffs = []
                compare(a, b, f, diffs)
                if diffs:
                    print(f"FAIL {name}: {f} differs from the committed file:\n  " + "\n  ".join(diffs))
                    failed += 1
                else:
                    with open(os.path.join(tmp, f), "rb") as fa, open(committed, "rb") as fb:
                        same = fa.read() == fb.read()
                    print(f"ok   {name}: {f} {'identical' if same else f'equal within {RTOL}'}")
    if failed:
        print(f"{failed} fixture check(s) failed")
        sys.exit(1)


main()
