"""The worker: stored mail in, tickets and outgoing mail out.

runner.py      Pipeline: claim from the spool under a lease, parse, apply a batch in
               one transaction (a savepoint each on failure), record the outcomes
spool.py       the claim queries, recording outcomes (+ /metrics), the log line a mail
duplicates.py  stored already? (replayed after a crash, or a duplicate)
chain.py       CHAIN: the dispositions in order, each (context, step) -> Outcome | None
checks.py lookups.py agentmail.py filters.py followup.py newticket.py   the dispositions
opening.py     open_ticket: every new ticket opened and acknowledged (#fwd's too)
answers.py replyall.py   acknowledgements and responses; people a follow-up copies
context.py message.py    what the dispositions share: services; the message and its Outcome
"""
