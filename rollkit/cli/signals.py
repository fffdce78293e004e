"""Ctrl-C for every script, however it was started. Kept apart from `common` (which imports most
of rollkit) so that scripts can install it before their imports."""

from __future__ import annotations

import signal
import threading


def honour_ctrl_c() -> None:
    """Make SIGINT (Ctrl-C, `kill -INT`) raise KeyboardInterrupt, whatever the launching process did.

    A shell without job control starts a background command (`nohup cmd &` in a script, CI) with
    SIGINT ignored, and Python then installs no handler: the signal would do nothing and a run could
    only be killed, losing its summary. A parent may also leave SIGINT blocked; the mask survives exec.
    A handler the embedding program installed itself is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; it is the one that gets KeyboardInterrupt
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
