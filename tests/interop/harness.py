"""A very small test harness for the interop suites: named cases that assert,
run in order, one PASS/FAIL line each, and a closing `LABEL: N passed, M failed`
line (also written to --summary FILE as `N M` for run.sh to add up)."""

import argparse
import sys
import time
import traceback


class Suite:
    def __init__(self):
        self.label = "interop"
        self.cases = []

    def case(self, fn):
        """Registers `fn` as a case; cases run in the order they are defined."""
        self.cases.append(fn)
        return fn

    def run(self, label, summary_path=None, only=None):
        """Runs the cases; returns the exit code (0 when all passed)."""
        self.label = label
        passed = failed = 0
        for fn in self.cases:
            if only and fn.__name__ not in only:
                continue
            start = time.monotonic()
            try:
                fn()
            except Exception:  # an AssertionError, or anything unexpected: a failure
                failed += 1
                took = time.monotonic() - start
                print(f"FAIL {self.label} {fn.__name__} ({took:.2f}s)", flush=True)
                for line in traceback.format_exc().rstrip().splitlines():
                    print(f"     {line}", flush=True)
            else:
                passed += 1
                took = time.monotonic() - start
                print(f"PASS {self.label} {fn.__name__} ({took:.2f}s)", flush=True)
        if passed + failed == 0:
            # A suite that ran nothing proves nothing.
            print(f"FAIL {self.label}: no case ran", flush=True)
            failed = 1
        print(f"{self.label}: {passed} passed, {failed} failed", flush=True)
        if summary_path:
            with open(summary_path, "w") as f:
                f.write(f"{passed} {failed}\n")
        return 0 if failed == 0 else 1


def arguments(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--label", required=True, help="name printed on every line")
    parser.add_argument("--summary", help="write `PASSED FAILED` to this file")
    parser.add_argument("--only", nargs="*", help="run only these cases")
    return parser


def expect_error(code, call, *args, **kwargs):
    """Runs `call` and returns the grpc.RpcError it must raise with `code`."""
    import grpc

    try:
        result = call(*args, **kwargs)
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()!r}"
        return e
    raise AssertionError(f"expected {code}, but the call succeeded with {result!r}")


if __name__ == "__main__":
    sys.exit("harness.py is a library for the interop suites")
