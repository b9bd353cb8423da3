"""Drives `tagbinder emulator` with the clouds' official Python SDKs (issue 12, item 6).

    python tests/sdk/run_sdk_tests.py --binary target/debug/tagbinder --jdcloud2-sdk DIR

Starts the emulator on a free loopback port with the inventory of common.py, runs the
suites (test_alibaba_v1, test_alibaba_v3, test_jdcloud with JDCLOUD3, test_aws_boto3) in this process and
test_jdcloud again in a child process where jdcloud-sdk-core 1.3.3 (JDCLOUD2, installed in
DIR with `pip install --no-deps --target DIR`) provides `jdcloud_sdk.core`. Prints every test
and a closing line `N passed, N failed`; exits non-zero when a test failed or errored, when
a test was skipped (nothing here may be skipped silently), or when no test ran.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = ["test_alibaba_v1", "test_alibaba_v3", "test_jdcloud", "test_aws_boto3"]


class Outcome(unittest.TextTestResult):
    """Counts passes too (unittest only keeps failures)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def run_suites(names, label):
    """Runs the named test modules; answers (passed ids, failed ids with their reasons)."""
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromName(name) for name in names)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Outcome)
    print(f"== {label}", flush=True)
    result = runner.run(suite)
    failed = [(test.id(), text) for test, text in result.failures + result.errors]
    failed += [(test.id(), f"skipped: {why}") for test, why in result.skipped]
    failed += [(test.id(), "unexpected success") for test in result.unexpectedSuccesses]
    return result.passed, failed


def start_emulator(binary, workdir):
    inventory = os.path.join(workdir, "inventory.json")
    sys.path.insert(0, HERE)
    import common

    with open(inventory, "w", encoding="utf-8") as out:
        json.dump(common.inventory(), out)
    process = subprocess.Popen(
        [binary, "emulator", "--listen", "127.0.0.1:0", "--inventory", inventory,
         "--page-size", str(common.PAGE_SIZE)],
        stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    marker = "serving "
    if marker not in line:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.split(marker, 1)[1].strip()


def child_jdcloud2(args):
    """In the child: jdcloud-sdk-core 1.3.3's core ahead of jdcloud-sdk's, then the suite."""
    sys.path.insert(0, args.jdcloud2_sdk)
    import jdcloud_sdk

    # NB: both distributions ship a `jdcloud_sdk` package; the older one has only `core`.
    # Its path comes first, the newer one's after it for `services`.
    newer = [p for p in sys.path[1:] if os.path.isdir(os.path.join(p, "jdcloud_sdk", "services"))]
    jdcloud_sdk.__path__ = list(jdcloud_sdk.__path__) + [os.path.join(newer[0], "jdcloud_sdk")]
    from jdcloud_sdk.core import version

    if version.VERSION != "1.3.3":
        raise SystemExit(f"jdcloud_sdk.core is {version.VERSION}, not 1.3.3")
    os.environ["JDCLOUD_SIGNING"] = "2"
    passed, failed = run_suites(["test_jdcloud"], "jdcloud-sdk-core 1.3.3 (JDCLOUD2)")
    with open(args.result, "w", encoding="utf-8") as out:
        json.dump({"passed": passed, "failed": failed}, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", default="target/debug/tagbinder")
    parser.add_argument("--jdcloud2-sdk", required=True,
                        help="folder holding jdcloud-sdk-core==1.3.3 (pip install --no-deps --target)")
    parser.add_argument("--child-jdcloud2", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_jdcloud2:
        child_jdcloud2(args)
        return 0
    with tempfile.TemporaryDirectory() as workdir:
        emulator, url = start_emulator(os.path.abspath(args.binary), workdir)
        os.environ["TAGBINDER_EMULATOR_URL"] = url
        try:
            os.environ["JDCLOUD_SIGNING"] = "3"
            passed, failed = run_suites(SUITES, f"official SDKs against {url}")
            result = os.path.join(workdir, "jdcloud2.json")
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child-jdcloud2",
                 "--jdcloud2-sdk", os.path.abspath(args.jdcloud2_sdk), "--result", result],
                check=False)
            if child.returncode == 0 and os.path.exists(result):
                with open(result, encoding="utf-8") as answer:
                    outcome = json.load(answer)
                passed += [f"jdcloud2:{t}" for t in outcome["passed"]]
                failed += [(f"jdcloud2:{t}", why) for t, why in outcome["failed"]]
            else:
                failed.append(("jdcloud2", f"the JDCLOUD2 child exited with {child.returncode}"))
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    for test, why in failed:
        print(f"FAILED {test}\n{why}")
    if not passed and not failed:
        failed.append(("suite", "no test ran"))
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
