"""Each hardening suite is a make target that runs its own test file
(`make test-SUITE`; docs/security.md and docs/reliability.md name them)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def suites():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^SUITES := (.*)$", f.read(), re.M).group(1).split()


def test_every_suite_target_runs_its_tests():
    names = suites()
    assert "escape" in names and "valgrind" in names, names
    for name in names:
        assert os.path.exists(os.path.join(ROOT, "test", "e2e", f"test_{name}.py")), name
        # -n: what make would run, without building or running it
        r = subprocess.run(["make", "-n", "-C", ROOT, "--no-print-directory", f"test-{name}"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert f"scripts/test.sh suite {name}" in r.stdout, (name, r.stdout[-500:])
