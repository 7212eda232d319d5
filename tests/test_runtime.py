import os
import subprocess
import sys

import pytest

from recsys.errors import StackVersionError
from recsys.runtime import STACK, check_stack, installed_versions, stack_problems

GOOD = {"tensorflow": "2.20.0", "tf-keras": "2.20.1", "tensorflow-recommenders": "0.7.7",
        "scann": "1.4.2"}


def test_legacy_keras_is_set_by_importing_recsys():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"


def test_installed_stack_is_the_supported_one():
    check_stack()
    assert stack_problems(installed_versions()) == []


def test_supported_versions_pass():
    assert stack_problems(GOOD) == []


@pytest.mark.parametrize("name, version, fragment", [
    ("tensorflow", "2.21.0", "tensorflow 2.21.0 is installed but this project needs "
                             "tensorflow==2.20.*"),
    ("tf-keras", "2.19.0", "tf-keras 2.19.0 is installed"),
    ("scann", "1.4.1", "scann 1.4.1 is installed but this project needs scann==1.4.2"),
    ("tensorflow-recommenders", None, "tensorflow-recommenders is not installed"),
])
def test_wrong_versions_name_the_package_and_the_fix(name, version, fragment):
    with pytest.raises(StackVersionError) as err:
        check_stack({**GOOD, name: version})
    message = str(err.value)
    assert fragment in message
    assert "Fix: pip install -c constraints.txt" in message
    assert all(req.pin in message for req in STACK)


def test_installed_versions_reports_absent_distributions():
    def lookup(name):
        from importlib.metadata import PackageNotFoundError
        raise PackageNotFoundError(name)
    assert set(installed_versions(lookup=lookup).values()) == {None}


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=240)


@pytest.mark.parametrize("entry_point", ["recsys", "trainer", "beam_jobs", "serving",
                                         "workflows.cli.main"])
def test_every_entry_point_sets_legacy_keras(entry_point):
    out = _python(f"import {entry_point}, os; print(os.environ['TF_USE_LEGACY_KERAS'])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_tensorflow_imported_first_without_the_variable_is_refused():
    out = _python("import sys, types; sys.modules['tensorflow'] = types.ModuleType('tf'); "
                  "import recsys")
    assert out.returncode != 0
    assert "tensorflow was imported before recsys without TF_USE_LEGACY_KERAS=1" in out.stderr


@pytest.mark.slow
def test_the_pinned_stack_imports_with_keras_2():
    out = _python("import trainer, tensorflow as tf, tensorflow_recommenders as tfrs, scann; "
                  "print(tf.__version__, tf.keras.__name__, tfrs.__version__)")
    assert out.returncode == 0, out.stderr
    version, keras, tfrs_version = out.stdout.strip().splitlines()[-1].split()
    assert version.startswith("2.20.") and tfrs_version == "v0.7.7"
    assert keras.startswith("tf_keras")  # Keras 2, as TFRS needs


METRICS_AFTER_FEAST = (
    "import recsys, feast.metrics, os\n"
    "from prometheus_client import values\n"
    "from serving.recommendations.metrics import ServiceMetrics\n"
    "a, b = ServiceMetrics(), ServiceMetrics()\n"
    "a.exposures.labels('dropped').inc(3)\n"
    "b.exposures.labels('dropped').inc()\n"
    "got = [s.value for m in b.exposures.collect() for s in m.samples\n"
    "       if s.name.endswith('_total')]\n"
    "print(values.ValueClass is values.MutexValue, got)\n")


def test_feast_does_not_make_the_services_metrics_share_values():
    """Feast 0.67 sets PROMETHEUS_MULTIPROC_DIR on import; two ServiceMetrics of one process
    then started from each other's counts (a CI failure: 4 dropped exposures out of 3)."""
    env = {k: v for k, v in os.environ.items() if "MULTIPROC" not in k.upper()}
    out = subprocess.run([sys.executable, "-c", METRICS_AFTER_FEAST], capture_output=True,
                         text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "[1.0]"]


def test_a_multiprocess_directory_set_before_the_start_is_still_honoured(tmp_path):
    out = _python("import recsys; from prometheus_client import values; "
                  "print(values.ValueClass is values.MutexValue)",
                  {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
