"""The customer's view: a read-only page of one ticket for the person a mail was sent to.

Where this sits in the flow: acknowledgements and answers carry ``{public_url}/view/TOKEN``
(outbound/outbox.py, tickets/viewlinks.py); web/app.py mounts these routes when [web]
public_url is set. The dashboard's login (web/auth.py) does not apply under /view/: the
token in the path is the authorisation, checked here. The Host check (web/hosts.py) and
the security headers (CSP without any script, no-store, no-referrer) do apply.

Answers, in order of the checks:

- a token that is malformed, not signed by us, for no ticket, or for a recipient who no
  longer belongs to the ticket: 404, the same page whatever the reason (nothing said);
  such tokens cost one HMAC per accepted secret and no database read before the tag;
- a genuine token whose time has passed: 410 with how to get a fresh one;
- a ticket merged into another: the survivor, if the recipient is one of its customers,
  else a page saying it was merged (the survivor is another customer's ticket);
- else the page (tickets/publicview.py decides what is public) and its files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from mailbridge.app import App
from mailbridge.config import Config
from mailbridge.store.db import read_tx
from mailbridge.tickets.publicview import Merged, Viewer, public_attachment, public_ticket, resolve
from mailbridge.tickets.viewlinks import Expired, ViewGrant, ViewLinks
from mailbridge.web.customer_text import words
from mailbridge.web.display import content_disposition

__all__ = ["PREFIX", "customer_routes"]

PREFIX = "/view/"
# Search engines must not index a customer's page even if a link leaks somewhere.
_NOINDEX = {"x-robots-tag": "noindex, nofollow, noarchive"}
_INVALID = ("Link not valid", "This link is not valid. Please use the link in the latest mail about your request.")
_EXPIRED = (
    "Link expired",
    "This link has expired; reply to any mail about your request to get a fresh one.",
)
_MERGED = (
    "Request merged",
    "This request has been merged into another one. To reply, answer any mail about it; "
    "our team keeps the two together.",
)

T = TypeVar("T")
Page = Callable[[Request, str, dict[str, Any], int], Response]


def customer_routes(config: Config, app: App, links: ViewLinks, page: Page, static_dir: Path) -> list[Route]:
    """The routes of the customer's view (the stylesheet, the page, its files)."""

    def error(request: Request, what: tuple[str, str], status: int) -> Response:
        # The page's links are relative to /view/TOKEN; a file's URL is two levels below.
        up = "../../" if "attachment" in request.path_params else ""
        response = page(request, "view_error.html", {"title": what[0], "text": what[1], "up": up}, status)
        response.headers.update(_NOINDEX)
        return response

    def grant_of(request: Request) -> ViewGrant | Response:
        """The link's grant, or the answer for a link that is no good (checked before
        any database work: a forged token costs one HMAC per accepted secret)."""
        grant = links.check(request.path_params["token"], app.clock())
        if grant is None:
            return error(request, _INVALID, 404)
        if isinstance(grant, Expired):
            return error(request, _EXPIRED, 410)
        return grant

    def viewer_of(request: Request, conn: Connection, grant: ViewGrant) -> Viewer | Response:
        found = resolve(conn, grant)
        if found is None:
            return error(request, _INVALID, 404)
        if isinstance(found, Merged):
            return error(request, _MERGED, 200)
        return found

    def read_as_viewer(request: Request, read: Callable[[Connection, Viewer, ViewGrant], T]) -> T | Response:
        """What `read` finds for the link's viewer, in one read transaction; or the
        answer for a link that is no good or a ticket merged away."""
        grant = grant_of(request)
        if isinstance(grant, Response):
            return grant
        with read_tx(app.store.main) as conn:
            viewer = viewer_of(request, conn, grant)
            if isinstance(viewer, Response):
                return viewer
            return read(conn, viewer, grant)

    def view(request: Request) -> Response:
        data = read_as_viewer(
            request,
            lambda conn, viewer, grant: public_ticket(
                conn, viewer, config.support.name, viewer.ticket_id != grant.ticket_id
            ),
        )
        if isinstance(data, Response):
            return data
        lang, w = words(data.language)
        context = {
            "t": data,
            "token": request.path_params["token"],
            "subject_tag": f"[{data.reference}]",
            "lang": lang,
            "w": w,
        }
        response = page(request, "view.html", context, 200)
        response.headers.update(_NOINDEX)
        return response

    def attachment(request: Request) -> Response:
        """A file of a public message, as a download: like the dashboard's (web/app.py),
        never with the sender's content type, always as an attachment."""
        found = read_as_viewer(
            request, lambda conn, viewer, _grant: public_attachment(conn, viewer, request.path_params["attachment"])
        )
        if isinstance(found, Response):
            # A merged ticket's page (200) says so; its files are simply not there.
            return found if found.status_code != 200 else error(request, _INVALID, 404)
        if found is None:
            return error(request, _INVALID, 404)
        filename, data = found
        headers = {"content-disposition": content_disposition(filename), **_NOINDEX}
        return Response(data, media_type="application/octet-stream", headers=headers)

    def style(request: Request) -> Response:
        return FileResponse(static_dir / "style.css", media_type="text/css")

    return [
        # Before /view/{token}: a token never has a dot, so this name is never a token.
        Route(PREFIX + "style.css", style, name="view_style"),
        Route(PREFIX + "{token}", view, name="view"),
        Route(PREFIX + "{token}/attachment/{attachment:int}", attachment, name="view_attachment"),
    ]
