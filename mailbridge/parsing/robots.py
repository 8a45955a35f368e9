"""Should we ever answer this mail automatically? (RFC 3834 and what real robots do)

Part of the classify stage: pure, reads only the parsed message and its envelope. A
reason string means "do not auto-reply"; the ticket is still created or updated, the
mail is never lost, we just keep out of mail loops and bounce storms.
"""

from __future__ import annotations

from collections.abc import Collection

from mailbridge.parsing.mime import ParsedMail

_ROBOT_LOCALS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce", "bounces"}
)
_SUPPRESS_TOKENS = frozenset({"all", "autoreply", "oof"})


def _local_part(address: str) -> str:
    local = address.rsplit("@", 1)[0].lower()
    return local.split("+", 1)[0]


def is_robot_address(address: str) -> bool:
    """Null sender or an address that belongs to a machine (RFC 3834 5.2, RFC 5321 4.5.5)."""
    if not address or address == "<>":
        return True
    local = _local_part(address)
    return local in _ROBOT_LOCALS or local.startswith(("mailer-daemon", "noreply", "no-reply"))


def auto_reply_block_reason(
    mail: ParsedMail,
    envelope_from: str | None,
    own_addresses: Collection[str],
    own_domains: Collection[str] = (),
    *,
    noreply_vouched: bool = False,
) -> str | None:
    """Why this mail must not get an automatic answer, or None when it may.

    ``noreply_vouched``: the mail comes from a no-reply sender the admin named as one
    that writes for a person in Reply-To ([tickets] requester_from), so its robot-like
    From and envelope names are not held against it; a null envelope sender, an
    Auto-Submitted, Precedence or list header still are."""
    auto = (mail.header("Auto-Submitted") or "").strip().lower()
    if auto and auto.split(";", 1)[0].strip() != "no":
        return f"Auto-Submitted: {auto[:60]}"
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "list"}:
        return f"Precedence: {precedence}"
    for name, _value in mail.headers:
        lname = name.lower()
        if lname == "list-id" or lname.startswith("list-"):
            return f"mailing list header {name}"
    suppress = (mail.header("X-Auto-Response-Suppress") or "").lower()
    if _SUPPRESS_TOKENS & {tok.strip() for tok in suppress.replace(";", ",").split(",")}:
        return f"X-Auto-Response-Suppress: {suppress[:60]}"
    if mail.content_type == "multipart/report":
        return "delivery or disposition report (multipart/report)"
    # The envelope sender is where replies to robots go (RFC 3834 4); a null one means
    # the mail is itself a notification.
    if envelope_from is not None and is_robot_address(envelope_from) and not (noreply_vouched and envelope_from):
        return f"envelope sender {envelope_from or '<>'} is a robot or null"
    sender = mail.from_.address if mail.from_ else ""
    if not sender:
        return "no usable From address"
    if is_robot_address(sender) and not noreply_vouched:
        return f"sender {sender} is a robot address"
    own = {a.lower() for a in own_addresses}
    domains = {d.lower() for d in own_domains}
    for addr in {sender.lower(), (envelope_from or "").lower()} - {""}:
        base = f"{_local_part(addr)}@{addr.rsplit('@', 1)[-1]}"
        if base in own or addr.rsplit("@", 1)[-1] in domains:
            return f"sender {addr} is one of our own addresses (loop)"
    return None
