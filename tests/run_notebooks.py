"""Execute every notebook in a folder top to bottom; fail on any error.

    PYTHONPATH=python /usr/bin/python3 tests/run_notebooks.py notebooks

Notebooks run in their own folder, on a kernel started with this very
interpreter (a temporary kernelspec, so a `python3` elsewhere on PATH is
never picked up). Committed notebooks must carry no outputs: a notebook with
outputs or execution counts fails, so results are always produced here.
The kernel draws with matplotlib's inline backend, as Jupyter does, and
every cell that plots must have shown an image: a notebook that forces a
backend that shows nothing (Agg) fails; so does one whose outputs carry
known noise (tqdm's "IProgress not found", librdkafka's "Disconnected" or
"brokers are down" from the embedded broker's shutdown). Prints
`notebooks: N passed, N failed` last.
"""
import json
import os
import re
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def kernel_dir():
    root = tempfile.mkdtemp(prefix="sw-kernels-")
    spec = os.path.join(root, "kernels", "sw-python")
    os.makedirs(spec)
    with open(os.path.join(spec, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-Xfrozen_modules=off", "-m",
                            "ipykernel_launcher", "-f",
                            "{connection_file}"],
                   "display_name": "streamwise test kernel",
                   "language": "python"}, f)
    return root


# a cell that draws: pyplot, an Axes' or DataFrame's plot, streamwise.plots
PLOTS = re.compile(r"\bplt\.(plot|subplots|figure|bar|hist|scatter)\b|"
                   r"\.plot\(|\bplots\.\w+\(")


# lines a notebook user should never see: tqdm falling back from its widget,
# librdkafka reporting the embedded broker's shutdown as an error
NOISE = re.compile(r"IProgress not found|Disconnected|brokers are down")


def noise(nb):
    """(cell, line) of the first noise line in the outputs, or None."""
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            text = o.get("text", "") or "".join(
                str(v) for v in o.get("data", {}).values())
            m = NOISE.search(text)
            if m:
                return i, text[max(0, m.start() - 60):m.end() + 20]
    return None


def missing_images(nb):
    """Indices of the cells that draw but showed no image."""
    bad = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or not PLOTS.search(c.source):
            continue
        if not any("image/png" in o.get("data", {}) for o in c.outputs):
            bad.append(i)
    return bad


def has_outputs(nb):
    return any(c.get("outputs") or c.get("execution_count")
               for c in nb.cells if c.cell_type == "code")


def main(folder):
    os.environ["JUPYTER_PATH"] = kernel_dir()
    # the kernel's own default, inline, is what a user sees
    os.environ.pop("MPLBACKEND", None)
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if n.endswith(".ipynb"))
    passed = failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if has_outputs(nb):
            print(f"FAIL {path}: committed with outputs; clear them first")
            failed += 1
            continue
        t0 = time.perf_counter()
        client = NotebookClient(nb, timeout=600, kernel_name="sw-python",
                                resources={"metadata": {
                                    "path": os.path.dirname(
                                        os.path.abspath(path))}})
        try:
            client.execute()
        except CellExecutionError as e:
            print(f"FAIL {path}:\n{e}")
            failed += 1
            continue
        bad = missing_images(nb)
        if bad:
            print(f"FAIL {path}: cells {bad} plot but showed no image")
            failed += 1
            continue
        loud = noise(nb)
        if loud:
            print(f"FAIL {path}: cell {loud[0]} printed {loud[1]!r}")
            failed += 1
            continue
        print(f"ok   {path} ({time.perf_counter() - t0:.1f} s)")
        passed += 1
    if not paths:
        print(f"no notebooks in {folder}")
        failed += 1
    print(f"notebooks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks"))
