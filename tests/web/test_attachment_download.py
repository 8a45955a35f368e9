"""Issue 15 (10): a ticket's attachments, fetched byte for byte by the CLI
(`mailbridge tickets attachment REF N [-o FILE]`) and downloaded from the dashboard's
ticket page by someone with the token: always as a download (Content-Disposition:
attachment), as application/octet-stream with nosniff, whatever type the sender
declared (an HTML attachment must never render in the dashboard's origin).
Through the real daemon and its web child."""

from __future__ import annotations

import urllib.error
import urllib.request
from email.message import EmailMessage
from urllib.parse import unquote

from tests.support import mailbridge, mailbridge_json
from tests.web.conftest import web_daemon  # noqa: F401 (the fixture)

TOKEN = "a-token-for-the-attachment-test-0123456789"
HTML = b"<html><body><script>alert(document.cookie)</script>hello</body></html>"
PDF = b"%PDF-1.4\n\x00\x01\x02 binary \xff\xfe"
PDF_NAME = 'Bericht "Q3" \u00fcber; alles.pdf'


def _get(url: str, token: str | None = TOKEN) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a test's own URL)
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_attachments_from_the_cli_and_the_ticket_page(web_daemon, sink, tmp_path):  # noqa: F811
    daemon, base = web_daemon(relay_port=sink.port, token=TOKEN)
    mail = EmailMessage()
    mail["From"] = "Rita Requester <rita@example.com>"
    mail["To"] = "support@help.example"
    mail["Subject"] = "Two files"
    mail["Message-ID"] = "<two-files@example.com>"
    mail.set_content("See the files.\n")
    mail.add_attachment(HTML, maintype="text", subtype="html", filename="page.html")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename=PDF_NAME)
    daemon.send(bytes(mail.as_bytes()), mail_from="rita@example.com")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    ref = ticket["reference"]

    # The CLI: numbered in `tickets show`, fetched to a file or to standard output.
    shown = mailbridge(daemon.config, "tickets", "show", ref).stdout.decode()
    assert "[attachment 1] page.html (text/html" in shown and "[attachment 2] " in shown
    out = tmp_path / "got.pdf"
    mailbridge(daemon.config, "tickets", "attachment", ref, "2", "-o", str(out))
    assert out.read_bytes() == PDF
    assert mailbridge(daemon.config, "tickets", "attachment", ref.lower(), "1").stdout == HTML
    missing = mailbridge(daemon.config, "tickets", "attachment", ref, "3", check=False)
    assert missing.returncode == 2
    assert f"{ref} has 2 attachment(s), not 3" in missing.stderr.decode()
    nothing = mailbridge(daemon.config, "tickets", "attachment", "MB-2026-999999", "1", check=False)
    assert nothing.returncode == 2 and "no ticket MB-2026-999999" in nothing.stderr.decode()

    # The ticket page links each one; a download is never rendered.
    status, _headers, page = _get(f"{base}/tickets/{ref}")
    assert status == 200
    assert f'href="{base}/tickets/{ref}/attachments/1" download'.encode() in page
    for number, data in ((1, HTML), (2, PDF)):
        status, headers, body = _get(f"{base}/tickets/{ref}/attachments/{number}")
        assert status == 200 and body == data
        assert headers["content-type"] == "application/octet-stream"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-disposition"].startswith("attachment; filename=")
        assert headers["cache-control"] == "no-store"
    disposition = headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert disposition.count('"') == 2, "the quoted name ends where it should"
    stored = mailbridge_json(daemon.config, "tickets", "show", ref)["messages"][0]["attachments"][1]["filename"]
    assert "\u00fcber" in stored and unquote(disposition.split("filename*=UTF-8''", 1)[1]) == stored
    # Only with the token; a number that is not there is not found.
    assert _get(f"{base}/tickets/{ref}/attachments/1", token=None)[0] == 401
    assert _get(f"{base}/tickets/{ref}/attachments/3")[0] == 404
    assert _get(f"{base}/tickets/{ref}/attachments/0")[0] == 404
    assert _get(f"{base}/tickets/MB-2026-999999/attachments/1")[0] == 404
