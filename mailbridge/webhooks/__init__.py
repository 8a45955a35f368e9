"""Outgoing webhooks: ticket events sent to other systems (plain signed JSON, or chat
messages), [[webhooks]] in config.toml, docs/webhooks.md and docs/chat.md.

    tickets/lifecycle.py (every event row) --> events.py (which webhook event?)
        --> enqueue.py: webhook_deliveries rows, in the event's own transaction
    sender process, its webhook thread --> dispatch.py: claim due deliveries, in order
        per ticket, sign (payload.py) or render a chat message (chat.py), send through
        http.py (SSRF checks, same-origin redirects only), settle: sent | pending with
        backoff | failed; a circuit breaker per endpoint
    cli/webhooks.py, web/metrics.py, web/dashboard.py --> state.py (read, re-queue)

The hook is the database engine's event listener (store/pending.listen), registered by
the App with the enabled webhooks when it builds its Store: keyed by that engine, so no
process-global a test could leak into another.
"""
