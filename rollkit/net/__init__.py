"""Talking to endpoints. Endpoint configuration and the pool that routes requests (`endpoints`), one
adapter per kind (`kinds/`), each endpoint's own live state: its pacing against the server's meters
(`pacing`), its one ramp and refusal verdict (`ramp`, `refusals`), its health (`endpoint_state`);
every gate a request passes (`admission`), one exchange with one endpoint (`exchange`), replies and
error classes (`replies`, `errors`), the chat client that orchestrates them (`client`: journal,
retries, `n` fill-in, outages, stats), samples per request (`samples`), list prices (`pricing`) and
keeping keys out of every message (`secrets`).

May import: `store`, `content`. Never a stage, batch, export, report or workflow module.
"""
