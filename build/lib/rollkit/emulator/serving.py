"""The emulator's server loop: bind, print the listening line, serve until SIGINT/SIGTERM, and the
scheduled outage of --down-at/--down-for. `rollkit emulator` (rollkit/cli/emulator.py) parses the flags."""

from __future__ import annotations

import asyncio
import logging
import signal

from rollkit.emulator.config import EmulatorConfig

# The line tests and scripts wait for; keep it stable.
LISTENING_LINE = "rollkit emulator listening on http://{host}:{port}"
SHUTDOWN_GRACE_SECONDS = 1.0  # stalled (timeout-fault) handlers must not hold up a stop


async def serve(config: EmulatorConfig, answer_key: dict[str, str]) -> None:
    """Serve until SIGINT/SIGTERM, printing the listening line once the port is bound."""
    # Imported here: the tokenizer takes most of a second to load, and --help or a refused
    # --host should answer at once.
    from aiohttp import web

    from rollkit.emulator.server import EMULATOR_KEY, build_app

    app = build_app(config, answer_key)
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    # handler_cancellation: a handler whose client hung up stops, so stats see it as client_closed.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=logging.getLogger("rollkit.emulator.access")
                           if debug else None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = runner.addresses[0][1]
        print(LISTENING_LINE.format(host=config.host, port=port), flush=True)
        if config.down_at is not None:
            _outage = asyncio.create_task(_go_down(runner, site, port, config, app[EMULATOR_KEY]))
        await stop.wait()
    finally:
        await runner.cleanup()


async def _go_down(runner, site, port: int, config: EmulatorConfig, emulator) -> None:
    """An outage: the listening socket closes (connections refused) for `down_for` seconds."""
    from aiohttp import web

    await asyncio.sleep(config.down_at or 0.0)
    emulator.down = True
    await site.stop()
    await asyncio.sleep(config.down_for)
    await web.TCPSite(runner, config.host, port, reuse_address=True).start()
    emulator.down = False
