"""Which service process owns a turn: ``host:pid:token``, stamped on every turn it starts.

At start-up a process fails only the pending turns of processes known to be dead, so a
console opened beside a running bot on the same database leaves the bot's turns alone.
"""

from __future__ import annotations

import os
import socket
import uuid

from storage.models import INSTANCE_LEN

SEP = ":"
HOST_CHARS = 40  # host name kept in an id; with the pid and the token it stays ≤ INSTANCE_LEN
TOKEN_CHARS = 8  # tells apart two processes that had the same pid (a restarted container)


def _host() -> str:
    return socket.gethostname()[:HOST_CHARS].replace(SEP, "-")


def new_instance_id() -> str:
    """This process's id: the host, the pid and a random token."""
    instance = f"{_host()}{SEP}{os.getpid()}{SEP}{uuid.uuid4().hex[:TOKEN_CHARS]}"
    assert len(instance) <= INSTANCE_LEN
    return instance


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there; assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def instance_dead(instance_id: str, current: str | None = None) -> bool:
    """Known to be dead: same host and its pid is gone, or its pid is now ours (`current`
    being a different instance). Another host's process, or an id not in this form, is
    unknown, and counts as alive."""
    host, _, rest = instance_id.partition(SEP)
    pid_text, _, token = rest.partition(SEP)
    if host != _host() or not pid_text.isdigit() or not token:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return instance_id != current
    return not _pid_alive(pid)
