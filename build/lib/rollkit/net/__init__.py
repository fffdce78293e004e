"""Talking to endpoints: endpoint configuration and the pool (`endpoints`), one adapter per kind
(`kinds/`), pacing against each server's meters (`pacing`), the chat client (`client`: journal, retries,
`n` fill-in, outages), refusals of the request itself (`refusals`), samples per request (`samples`), list
prices (`pricing`) and keeping keys out of every message (`secrets`).

May import: `store`, `content`. Never a stage, batch, export, report or workflow module.
"""
