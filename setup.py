"""Build streamwise._sw, linking the core archive that `make lib` builds.

The extension never compiles csrc/ itself: it links build/libswcore.a, the
very archive the runner and the C tests link, so all three run identical
object code. Build in place with `make` (or `python3 setup.py build_ext
--inplace`); `pip install --no-build-isolation .` also works offline.
"""
import glob
import os
import subprocess

import numpy
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = os.path.join(HERE, "build", "libswcore.a")
IO = os.path.join(HERE, "build", "libswio.a")

# Build (or refresh) the core archive first; make is the only build of csrc/.
subprocess.check_call(["make", "--no-print-directory", "-C", HERE, "lib"])



def _pkg_dirs(name):
    try:
        out = subprocess.check_output(["pkg-config", "--libs-only-L", name],
                                      text=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return [f[2:] for f in out.split() if f.startswith("-L")]


ext = Extension(
    "streamwise._sw",
    # one file per object over one private header, as CPython's
    # Modules/_sqlite/ (python/streamwise/_ext/module.h says which is which)
    sources=sorted(glob.glob("python/streamwise/_ext/*.c")),
    include_dirs=["csrc/include", "python/streamwise/_ext",
                  numpy.get_include()],
    extra_objects=[IO, CORE],
    depends=[IO, CORE, "csrc/include/streamwise.h",     # relink on change
             "python/streamwise/_ext/module.h"],
    libraries=["sqlite3", "rdkafka", "hdf5", "avro", "jansson", "yajl", "xxhash",
               "sodium", "z", "openblas", "m"],
    # Debian keeps the serial libhdf5 in a directory of its own
    library_dirs=_pkg_dirs("hdf5"),
    extra_link_args=["-pthread"],
    extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-ffp-contract=off"],
)

setup(
    package_dir={"": "python"},
    packages=["streamwise", "streamwise.datasets"],
    ext_modules=[ext],
)
