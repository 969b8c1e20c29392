"""pip install in a fresh virtual environment gives a whole streamwise:
the extension, and sw-serve and sw-broker beside it, so the embedded
broker starts and the runner runs with no checkout on the path."""
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(
    __file__)), "..", ".."))


def test_pip_install_in_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    # Debian's numpy and friends from the system; streamwise from here
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                    str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--quiet", ROOT],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "STREAMWISE_SERVE",
                        "STREAMWISE_BROKER")}
    code = (
        "import subprocess, streamwise as sw\n"
        "print(sw.__file__)\n"
        "print(sw.kafka.broker_program())\n"
        "print(sw.serve.runner_program())\n"
        "with sw.kafka.local_broker(topics=['t']) as b:\n"
        "    with sw.kafka.Sink('t', b.bootstrap) as s:\n"
        "        s.send([b'x'])\n"
        "    print('acked', s.flush()['acked'])\n"
        "print(subprocess.run([sw.serve.runner_program(), '--version'],\n"
        "                     capture_output=True, text=True).stdout)\n")
    r = subprocess.run([py, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    site = str(venv / "lib")
    assert lines[0].startswith(site)              # not the checkout's
    assert lines[1].startswith(site) and lines[1].endswith("bin/sw-broker")
    assert lines[2].startswith(site) and lines[2].endswith("bin/sw-serve")
    assert lines[3] == "acked 1"
    assert "streamwise" in lines[4]
