"""Build streamwise._sw, linking the core archives that `make lib` builds.

The extension never compiles csrc/ itself: it links build/libswcore.a and
build/libswio.a, the very archives the runner and the C tests link, so all
three run identical object code. `make` (or `make ext`) builds in place;
`pip install --no-build-isolation .` also works offline. Nothing runs at
import time: build_ext asks make for the archives and for the link line
(`make print-link-flags`, the Makefile's own library detection: a library
this machine lacks is never named, its adapter builds as a stub).

Why setuptools over meson-python (Debian's python3-mesonpy): the Makefile
is the one description of the C build (the core, the runner, the tests,
the sanitizer and fuzz builds, the library detection); meson-python would
need a meson.build describing the same objects a second time, and the
extension's own build is a dozen files that setuptools compiles with no
configuration. This file only links what make built.
"""
import glob
import os
import subprocess

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = os.path.join(HERE, "build", "libswcore.a")
IO = os.path.join(HERE, "build", "libswio.a")


def _make(*args):
    return subprocess.check_output(["make", "--no-print-directory", "-s",
                                    "-C", HERE, *args], text=True)


class BuildExt(build_ext):
    """make lib first (make is the only build of csrc/), then link with the
    Makefile's flags."""

    def run(self):
        # the archives, and the runner and broker installed beside the
        # package (streamwise/bin), so an installed streamwise serves and
        # starts its embedded broker with no checkout around
        subprocess.check_call(["make", "--no-print-directory", "-C", HERE,
                               "lib", "runner"])
        if not self.inplace:
            dest = os.path.join(self.build_lib, "streamwise", "bin")
            os.makedirs(dest, exist_ok=True)
            for name in ("sw-serve", "sw-broker"):
                self.copy_file(os.path.join(HERE, "build", "bin", name),
                               os.path.join(dest, name))
        flags = _make("print-link-flags").split()
        for e in self.extensions:
            e.libraries = [f[2:] for f in flags if f.startswith("-l")]
            e.library_dirs = [f[2:] for f in flags if f.startswith("-L")]
            e.extra_link_args = [f for f in flags
                                 if not f.startswith(("-l", "-L"))]
        super().run()


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
    extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-ffp-contract=off"],
)

setup(
    package_dir={"": "python"},
    packages=["streamwise", "streamwise.datasets"],
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
)
