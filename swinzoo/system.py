"""What the operating system tells swinzoo: the umask, whether a process still runs, the network's errors.

One home each (they were copied three times, with different edge cases). No swinzoo imports: every module
may use these.
"""

from __future__ import annotations

import os
import threading

__all__ = ["umask", "pid_alive", "process_start_time", "network_errors"]

_UMASK_LOCK = threading.Lock()
# /proc/stat's btime is whole seconds and the start tick is 1/CLK_TCK: a file made in the same couple of
# seconds as a process started is not judged older than it.
_START_SLACK_S = 2.0


def umask() -> int:
    """The process umask (reading it means setting it: the lock keeps two threads from seeing 0)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (from /proc), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f.read().decode().splitlines() if line.startswith("btime"))
        fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
        ticks = int(fields[19])  # field 22 of proc(5); fields[0] is field 3 (state)
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def pid_alive(pid: int, *, made_at: float | None = None) -> bool:
    """Can the process ``pid`` that made something at ``made_at`` (epoch seconds) still be running?

    No for pids that cannot exist; yes for another user's process. With ``made_at``, a process that started
    after that time is a newer one under a reused pid (a container's PID 1 always runs, but the PID 1 that
    left a temporary behind before a restart is gone), so the answer is no.
    """
    if pid <= 0 or pid >= 1 << 31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    if made_at is not None:
        started = process_start_time(pid)
        if started is not None and started > made_at + _START_SLACK_S:
            return False
    return True


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed connection raises through huggingface_hub: its HTTP clients' errors (httpx, and requests
    where installed) and the OS's own."""
    import importlib

    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)
