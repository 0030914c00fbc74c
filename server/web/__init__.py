"""The chat page: plain HTML, CSS and JavaScript in `static/`, served at `/`; no build step.

The page talks to the same REST and chat endpoints as any client, with a bearer token. A
development sign-in link carries the token in the URL fragment, which browsers never send to
a server, so it cannot end up in an access log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.auth import issue_token
from server.settings import Settings

STATIC = Path(__file__).parent / "static"
LOCAL_USER = "local"
LINK_LIFETIME = timedelta(days=7)

# No inline script or style, nothing from another origin, not framed, no forms posted anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def sign_in_link(settings: Settings, user_id: str = LOCAL_USER) -> str:
    """A link that opens the page signed in as `user_id` (development: `serve` prints it)."""
    token = issue_token(settings.better_auth_secret, user_id, ttl=LINK_LIFETIME)
    return f"{settings.public_url.rstrip('/')}/#token={token}"


def install(app: FastAPI) -> None:
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    # HEAD too: uptime checkers ask for the page that way.
    app.add_api_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
