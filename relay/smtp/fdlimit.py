"""Enough file descriptors for ``smtp.max_connections``.

Every open SMTP session holds a socket. Many systems start processes with a soft
RLIMIT_NOFILE of 1024 while the hard limit is far higher; a relay that keeps the soft one
would fail ``accept()`` (EMFILE) long before its connection cap. Start-up raises the soft
limit towards the hard one when, and only when, it is short: the shipped systemd unit sets
both to 65536 (``LimitNOFILE``), so there the call is never made (its system-call filter
forbids ``setrlimit``).
"""

from __future__ import annotations

import resource

import structlog

log = structlog.get_logger("relay.smtp")
HEADROOM = 512  # database pool, delivery connections, log files, policy pipes


def ensure_fd_limit(max_connections: int) -> int:
    """Raise the soft limit to what ``max_connections`` needs (capped by the hard limit);
    returns the soft limit now in force. Logs what it did, and warns if still short."""
    want = max_connections + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                log.info("smtp.fd_limit.raised", old=soft, new=target, hard=hard)
                soft = target
            except (ValueError, OSError) as err:
                log.warning("smtp.fd_limit.unchanged", soft=soft, error=str(err))
    if soft != resource.RLIM_INFINITY and soft < want:
        log.warning(
            "smtp.fd_limit.low",
            soft=soft,
            wanted=want,
            hint="raise LimitNOFILE / ulimit -n, or lower smtp.max_connections",
        )
    return soft
