"""TCP ports the fleet listens on: whether one is free to bind, and which
process holds it when it is not (psutil). Used by the dashboard before it
binds and by the supervisor before it announces the dashboard's URL.
"""

from __future__ import annotations

import errno
import socket


def port_holder(port: int) -> str | None:
    """Describe the process listening on `port` (psutil), when it can be found."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        conns = []
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline()) or proc.name()
                return f"PID {conn.pid} ({cmd[:160]})"
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return f"PID {conn.pid}"
    return None


def port_taken(host: str, port: int) -> str | None:
    """None when `host:port` can be bound now (the socket is closed again);
    otherwise who holds it, or why it cannot be bound, in words."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the dashboard binds
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "taken by " + (port_holder(port) or "another process (run `ss -ltnp` to see which)")
        return f"cannot be bound ({exc.strerror})"
    finally:
        sock.close()
    return None
