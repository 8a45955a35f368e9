"""format=flowed (RFC 3676) text/plain is decoded: soft breaks joined, stuffing removed,
quote depth respected, the signature separator kept, DelSp honoured."""

from __future__ import annotations

from mailbridge.parsing.mime import parse_message
from mailbridge.parsing.mimetree import unflow


def test_unflow_rules() -> None:
    assert unflow("one \ntwo \nthree\nfour") == "one two three\nfour"
    assert unflow(" From here\n >x") == "From here\n>x", "space-stuffing removed"
    assert unflow("> a \n> b\n>> c \n>> d\ne") == "> a b\n>> c d\ne"
    assert unflow("> a \nb") == "> a \nb", "a change of quote depth ends the paragraph"
    assert unflow("text\n-- \nAlice") == "text\n-- \nAlice", "the signature separator is no soft break"
    assert unflow("ab \ncd", delsp=True) == "abcd", "DelSp=yes removes the space before the break"
    assert unflow("") == "" and unflow("last line \n") == "last line "


def test_a_flowed_mail_body_is_decoded_and_a_fixed_one_is_not() -> None:
    head = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    body = b"\r\n#kb How to reconnect the VPN client after the gateway was \r\nrestarted\r\n#status resolved\r\n"
    flowed = parse_message(head + b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n" + body)
    assert flowed.text.splitlines()[0] == "#kb How to reconnect the VPN client after the gateway was restarted"
    fixed = parse_message(head + b"Content-Type: text/plain; charset=utf-8\r\n" + body)
    assert fixed.text.splitlines()[0] == "#kb How to reconnect the VPN client after the gateway was "
