"""The README's examples run as printed: the C program compiles with the
link line it gives and runs."""
import os
import re
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_the_readme_c_example_builds_with_its_link_line_and_runs(tmp_path):
    text = open(os.path.join(ROOT, "README.md")).read()
    c = re.search(r"## C\n\n```c\n(.*?)```", text, re.S).group(1)
    cmd = re.search(r"```sh\n(cc -Icsrc/include m\.c [^\n]*)\n```", text)
    assert cmd, "the README prints no link line after its C example"
    (tmp_path / "m.c").write_text(c)
    line = cmd.group(1).replace("-Icsrc/include",
                                f"-I{ROOT}/csrc/include").replace(
        "build/libswcore.a", f"{ROOT}/build/libswcore.a")
    r = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("score ") and "saved m.swm" in r.stdout
    assert (tmp_path / "m.swm").stat().st_size > 0


def test_the_readme_python_examples_run_as_printed(tmp_path):
    # the quick start and the tracking example, verbatim, in an empty
    # directory with no data directory: what a fresh clone runs
    import sys
    text = open(os.path.join(ROOT, "README.md")).read()
    quick = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S)
    tracking = re.search(r"## Tracking and the registry\n\n```python\n(.*?)"
                         r"```", text, re.S)
    assert quick and tracking
    code = quick.group(1) + tracking.group(1)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               STREAMWISE_DATA=str(tmp_path / "no-data-here"),
               STREAMWISE_TRACKING_URI=str(tmp_path / "runs"))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # the figures the README prints in its comments are what it prints
    printed = re.search(r"# (\d\.\d{4})\n.*# (\d\.\d{4})", quick.group(1))
    assert r.stdout.strip() == (f"one pass: accuracy {printed.group(1)}, "
                                f"AUC {printed.group(2)}")
    assert (tmp_path / "cancer.swm").stat().st_size > 0
