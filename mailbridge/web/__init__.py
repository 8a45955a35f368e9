"""The read-only web view: a dashboard, ticket pages and /metrics (the "web" child).

Where it sits in the flow: beside everything else, reading only. The `web` child
(roles.run_web) serves `create_app` with uvicorn; every page is built from the database at
request time (the same rows the worker, sender, scheduler and IMAP fetcher write), and
nothing here writes a ticket, a message or a spool row.

    browser / Prometheus ──HTTP──► auth.py (token, off the loopback) ──► app.py
                                      ├─ /                dashboard.py  the live queue + reports/
                                      ├─ /tickets/{ref}   tickets/views.py + display.py (nh3 again)
                                      ├─ /metrics         metrics.py    a Collector read at scrape time
                                      └─ /healthz
"""
