"""Hostile mail shown in a real browser: every value from the mail is text, nothing from
it runs, and nothing from it loads (a tracker the test owns records any request)."""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium.webdriver.common.by import By

from tests.support import mailbridge_json
from tests.web.conftest import severe_console_entries

SUBJECT = "<script>document.title='pwned'</script>"
NAME = "<img src=x onerror=\"document.title='pwned'\">"

# Every on*-attribute, javascript: URL and iframe anywhere in the page (run by WebDriver,
# which the page's CSP does not restrict).
FIND_ACTIVE = """
const found = [];
for (const el of document.querySelectorAll('*')) {
  for (const attr of el.attributes) {
    const v = attr.value.trim().toLowerCase();
    if (attr.name.toLowerCase().startsWith('on')) found.push(el.tagName + ' ' + attr.name);
    if ((attr.name === 'href' || attr.name === 'src') && v.startsWith('javascript:')) found.push(el.tagName + ' js');
  }
  if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'FRAME'].includes(el.tagName)) found.push(el.tagName);
}
return found;
"""


class Tracker(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def hostile_mail(tracker_port: int) -> bytes:
    html = (
        "<html><body><p>Hello <b>team</b></p>"
        "<script>document.title='pwned'</script>"
        "<img src=x onerror=\"document.title='pwned'\">"
        "<a href=\"javascript:document.title='pwned'\">click me</a>"
        '<iframe src="https://example.com/"></iframe>'
        f'<img src="http://127.0.0.1:{tracker_port}/track.png" alt="tracker">'
        "<p onclick=\"document.title='pwned'\">styled</p>"
        '<a href="https://example.com/help">help page</a>'
        "</body></html>"
    )
    name = NAME.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'From: "{name}" <eve@example.com>\r\n'
        "To: support@help.example\r\n"
        f"Subject: {SUBJECT}\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <xss-1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello team <script>x</script>\r\n"
        f"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b--\r\n"
    ).encode()


def test_hostile_mail_is_only_text(browser, web_daemon, tmp_path):
    tracker = ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    Tracker.hits = []
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    try:
        daemon, base = web_daemon()
        daemon.send(hostile_mail(tracker.server_address[1]), mail_from="eve@example.com")
        daemon.wait_idle()
        [ticket] = mailbridge_json(daemon.config, "tickets", "list")
        assert ticket["subject"] == SUBJECT and ticket["requester_name"] == NAME

        severe_console_entries(browser)
        browser.get(base + "/")
        assert browser.title == "Dashboard · Example Support"
        row = browser.find_element(By.CSS_SELECTOR, f"#queue tr[data-reference='{ticket['reference']}']")
        assert row.find_element(By.CSS_SELECTOR, "td.subject").text == SUBJECT
        assert row.find_element(By.CSS_SELECTOR, ".name").text == NAME
        assert browser.execute_script(FIND_ACTIVE) == []

        browser.get(f"{base}/tickets/{ticket['reference']}")
        assert browser.title == f"{ticket['reference']} · Example Support"
        assert browser.find_element(By.ID, "ticket-subject").text == SUBJECT
        message = browser.find_element(By.CSS_SELECTOR, "article.message")
        assert message.find_element(By.CSS_SELECTOR, ".from .name").text == NAME
        shown = message.find_element(By.CSS_SELECTOR, ".mail-html")
        assert "Hello team" in shown.text and "click me" in shown.text
        assert browser.execute_script(FIND_ACTIVE) == []
        # Images stay as placeholders without any source; links keep only http(s).
        assert [i.get_attribute("src") for i in shown.find_elements(By.TAG_NAME, "img")] == [None, None]
        links = {
            a.text: (a.get_attribute("href"), a.get_attribute("rel")) for a in shown.find_elements(By.TAG_NAME, "a")
        }
        assert links["click me"][0] is None
        assert links["help page"] == ("https://example.com/help", "noopener noreferrer nofollow")
        assert browser.execute_script("return document.title") == f"{ticket['reference']} · Example Support"
        assert severe_console_entries(browser) == []

        # The mail's own tracker was never asked (the test's own request below is the
        # proof the server would have recorded one).
        assert Tracker.hits == []
        for path in ("/", f"/tickets/{ticket['reference']}"):
            with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310
                csp = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        with urllib.request.urlopen(f"http://127.0.0.1:{tracker.server_address[1]}/probe", timeout=10):  # noqa: S310
            pass
        assert Tracker.hits == ["/probe"]
    finally:
        tracker.shutdown()
        tracker.server_close()
