"""[web] public_url and the gates around the customer's view, in-process: the URL is
checked when the config is read; the view is served only when it is set, under /view/
only, without the dashboard's login but behind the Host check; invalid tokens are
answered without touching a ticket."""

from __future__ import annotations

import pytest

from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from tests.support import write_config
from tests.web.conftest import web_section
from tests.web.test_hardening import TOKEN, client


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("help.example.com/desk", "absolute http(s) URL"),
        ("ftp://help.example.com", "absolute http(s) URL"),
        ("https://", "absolute http(s) URL"),
        ("https://help.example.com/desk?x=1", "query"),
        ("https://help.example.com/desk#top", "fragment"),
        ("https://user:pw@help.example.com/", "user name or password"),
        ("https://help.example.com/a b", "spaces"),
        ("https://help.example.com:99999/", "not a URL"),
    ],
)
def test_public_url_must_be_a_plain_absolute_http_url(tmp_path, value, why):
    with pytest.raises(ConfigError) as problem:
        load_config(write_config(tmp_path / "site", extra=web_section(8025) + f'public_url = "{value}"\n'))
    assert "public_url" in str(problem.value) and why in str(problem.value)


def test_public_url_is_kept_without_its_trailing_slash(tmp_path):
    config = load_config(
        write_config(tmp_path / "site", extra=web_section(8025) + 'public_url = "https://help.example.com/desk/"\n')
    )
    assert config.web.public_url == "https://help.example.com/desk" and config.web.view_link_days == 30


def test_the_view_needs_no_login_but_the_right_host(tmp_path):
    web = client(tmp_path, 'public_url = "https://help.example.com/desk"\n', "0.0.0.0", TOKEN)
    bad = "/view/" + "A" * 55
    # The public host is answered without being listed in allowed_hosts; the login is not
    # asked under /view/, and a token that is not ours is a plain 404.
    answer = web.get(bad, headers={"host": "help.example.com"})
    assert answer.status_code == 404 and "not valid" in answer.text
    assert answer.headers["cache-control"] == "no-store" and "noindex" in answer.headers["x-robots-tag"]
    assert web.get("/view/style.css", headers={"host": "help.example.com"}).status_code == 200
    # Another host is refused, also under /view/.
    assert web.get(bad, headers={"host": "evil.example"}).status_code == 400
    # Everything else still wants the login, on the public host too.
    for path in ("/", "/tickets/MB-1", "/metrics", "/static/style.css", "/viewx", "/view", "/view/../tickets/MB-1"):
        assert web.get(path, headers={"host": "help.example.com"}).status_code == 401, path


def test_without_public_url_there_is_no_view(tmp_path):
    web = client(tmp_path, "", "0.0.0.0", TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert web.get("/view/" + "A" * 55).status_code == 401
    assert web.get("/view/" + "A" * 55, headers=bearer).status_code == 404
    assert web.get("/healthz", headers={**bearer, "host": "help.example.com"}).status_code == 400
