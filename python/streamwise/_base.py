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
