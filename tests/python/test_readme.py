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
