"""Reports: the questions a service desk manager asks, answered from the event history.

Read side only; nothing here changes a ticket. `period` turns dates into instants in the
report's time zone, `history` reads the events of the tickets a report covers, `summary`
computes the figures, `problems` groups repeated incidents, `charts` draws them as inline
SVG and `render` writes them as a table, CSV, JSON or a self-contained HTML page. The CLI
(`mailbridge report`) and the dashboard (web/) are the callers.
"""
