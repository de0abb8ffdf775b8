"""Tiny test runner for MicroPython: calls every test_* function of the given
modules, prints one line per failure and a final 'RESULT passed failed' line."""
import sys


def run(module_names):
    passed = 0
    failed = 0
    for name in module_names:
        mod = __import__(name)
        names = sorted(n for n in dir(mod) if n.startswith("test_"))
        for n in names:
            fn = getattr(mod, n)
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s: %s" % (name, n, type(e).__name__, e))
                sys.print_exception(e)
    print("RESULT %d %d" % (passed, failed))
    return failed == 0
