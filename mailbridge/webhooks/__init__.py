"""Outgoing webhooks: ticket events sent to other systems (plain signed JSON, or chat messages)."""
