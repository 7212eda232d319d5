"""The README's two set-up commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ("python3.11 -m venv .venv && .venv/bin/pip install -c constraints.txt -e . && "
        ".venv/bin/recsys demo")
TESTS = ("python3.11 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]' && "
         ".venv/bin/python -m pytest")


def test_readme_has_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3.11 -m venv")]
    assert commands == [DEMO, TESTS]


def test_ci_runs_the_readme_test_command():
    assert TESTS in (ROOT / ".ci" / "run").read_text().splitlines()


def test_constraints_pin_the_stack():
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["tensorflow"].startswith("2.20.") and pins["tf_keras"].startswith("2.20.")
    assert pins["tensorflow-recommenders"] == "0.7.7" and pins["scann"] == "1.4.2"
    assert pins["feast"] == "0.67.0" and pins["apache-beam"] == "2.77.0"
