"""SLA clocks: business-time targets per ticket, paused while waiting on the requester."""
