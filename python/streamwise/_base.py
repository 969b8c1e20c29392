"""What the package's modules share that belongs to none of them."""
import getpass
import os
import socket


def who():
    """user@host, as the tracking store and the registry record it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def program(name, env):
    """The path of one of streamwise's executables (sw-serve, sw-broker):
    $env, the build in place (build/bin next to python/), the copy
    installed with the package (streamwise/bin, by pip install), or one
    on PATH; raises UnsupportedError naming where it looked."""
    import shutil
    from . import _sw
    given = os.environ.get(env)
    if given:
        return given
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "..", "..", "build", "bin", name),
                 os.path.join(here, "bin", name)):
        if os.path.exists(path):
            return os.path.normpath(path)
    found = shutil.which(name)
    if found:
        return found
    raise _sw.UnsupportedError(
        f"{name} not found: run make (it builds build/bin/{name}), pip "
        f"install the package (it installs streamwise/bin/{name}), or set "
        f"{env}")


def progress_bar(total, unit, desc=None):
    """The package's one progress bar (tqdm): the notebook widget where
    ipywidgets is installed, text otherwise (tqdm.auto would warn
    "IProgress not found" when it has to fall back); None without tqdm."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        try:
            from tqdm import tqdm
        except ImportError:                           # pragma: no cover
            return None
    return tqdm(total=total, unit=unit, desc=desc)
