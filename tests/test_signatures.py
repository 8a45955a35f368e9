"""parsing/signatures.py on its own: the signature block an HTML part marks, cut from the
end of an agent's text (issue 15, item 12); the daemon path is in test_agents_answers_path."""

from __future__ import annotations

from mailbridge.parsing.signatures import signature_text, strip_client_signature

OUTLOOK = (
    '<div>Hi,<br>done.</div><div id="Signature"><div><p>Alice Example</p><p>IT Support | +49 30 1</p>'
    "<img src='cid:logo'></div></div>"
)


def test_outlook_gmail_apple_blocks_are_found() -> None:
    assert signature_text(OUTLOOK).split() == ["Alice", "Example", "IT", "Support", "|", "+49", "30", "1"]
    gmail = '<div>x</div><div class="gmail_signature" data-smartmail="gmail_signature">Bob<br>Ops</div>'
    assert signature_text(gmail).split() == ["Bob", "Ops"]
    assert signature_text('<div id="AppleMailSignature">Carl</div>') == "Carl"
    assert signature_text("<div>no signature block here</div>") == ""
    assert signature_text(None) == ""


def test_the_body_loses_the_block_only_at_its_end() -> None:
    body = "Hi,\ndone.\n\nAlice Example\nIT Support | +49 30 1\n[cid:image001.png@01DA]"
    assert strip_client_signature(body, OUTLOOK) == "Hi,\ndone."
    # Not at the end (or not there at all): nothing is cut.
    kept = "Alice Example wrote the script.\nIt runs now."
    assert strip_client_signature(kept, OUTLOOK) == kept
    # A body that is nothing but the signature stays whole.
    only = "Alice Example\nIT Support | +49 30 1"
    assert strip_client_signature(only, OUTLOOK) == only


def test_broken_or_huge_html_never_raises() -> None:
    assert strip_client_signature("text", "<div id=Signature><<<&#xffffff;") == "text"
    assert strip_client_signature("text", '<div class="signature">' * 100_000) == "text"
