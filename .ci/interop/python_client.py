"""The official Python MCP client (PyPI `mcp`, version pinned in requirements.txt) against a
running oauth-mcp: discovery (RFC 9728, RFC 8414), dynamic registration (RFC 7591), the
authorization code flow with PKCE through the real login and consent form, an MCP
`tools/list` and `tools/call`, then a refresh (the server runs with a short access-token
lifetime, so the SDK must refresh before its next call).

Run by .ci/interop.sh:  python_client.py URL USERNAME PASSWORD MODE [DOCUMENT_URL]
MODE is passed to `mcp.Client(mode=...)`: "legacy" (session-based, the handshake-era
versions) or "auto" (the newest version both sides speak). With DOCUMENT_URL the client
identifies itself by that client ID metadata document (`client_metadata_url`) instead of
registering.

The browser is played by `SignIn`: it follows the authorization URL, fills the login and
consent form (`username`, `password`, the hidden fields, `action=approve`) and reads the code
from the 303 to the redirect URI, which is never contacted. Exits non-zero on any failure.
"""

from __future__ import annotations

import asyncio
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

REDIRECT_URI = "http://127.0.0.1:53682/callback"


class MemoryStorage(TokenStorage):
    """Keeps tokens and the registration in memory, and counts what the SDK stores."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.token_sets = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_sets += 1

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class FormReader(HTMLParser):
    """The first form of a page: its action and its input fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._in_form = True
            self.action = a.get("action", "")
        elif tag == "input" and self._in_form and a.get("name"):
            if a.get("type", "text") in ("hidden", "text", "password"):
                self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


class SignIn:
    """Plays the user's browser: the SDK's redirect handler and callback handler."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.result: AuthorizationCodeResult | None = None
        self.sign_ins = 0

    async def redirect(self, authorization_url: str) -> None:
        self.sign_ins += 1
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            page = await browser.get(authorization_url)
            if page.status_code != 200:
                raise RuntimeError(f"/authorize answered {page.status_code}: {page.text[:500]}")
            form = FormReader()
            form.feed(page.text)
            if form.action is None or "csrf" not in form.fields:
                raise RuntimeError(f"no login form with a csrf field on the page: {page.text[:500]}")
            fields = dict(form.fields)
            fields.update(username=self.username, password=self.password, action="approve")
            answer = await browser.post(urljoin(authorization_url, form.action), data=fields)
            location = answer.headers.get("location", "")
            if answer.status_code != 303 or not location.startswith(REDIRECT_URI):
                raise RuntimeError(
                    f"the consent form answered {answer.status_code} to {location!r}: {answer.text[:500]}"
                )
            query = parse_qs(urlparse(location).query)
            if "code" not in query:
                raise RuntimeError(f"no code in the redirect: {location}")
            self.result = AuthorizationCodeResult(
                code=query["code"][0],
                state=query.get("state", [None])[0],
                iss=query.get("iss", [None])[0],
            )

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("callback without a redirect")
        return self.result


async def main(url: str, username: str, password: str, mode: str, document: str | None) -> None:
    storage = MemoryStorage()
    sign_in = SignIn(username, password)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="interop: python mcp",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=sign_in.redirect,
        callback_handler=sign_in.callback,
        client_metadata_url=document,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            print(f"connected: protocol {client.protocol_version}", flush=True)
            tools = await client.list_tools()
            names = [t.name for t in tools.tools]
            print(f"tools/list: {names}", flush=True)
            if "echo" not in names:
                raise RuntimeError(f"the demo server's echo tool is missing: {names}")
            first = await client.call_tool("echo", {"text": "before refresh"})
            if first.is_error:
                raise RuntimeError(f"tools/call failed: {first}")
            # The server's access tokens live 2 s here: the next call needs a refresh.
            time.sleep(3)
            second = await client.call_tool("echo", {"text": "after refresh"})
            if second.is_error:
                raise RuntimeError(f"tools/call after the refresh failed: {second}")
    info = storage.client_info
    if info is None or not info.client_id:
        raise RuntimeError("the SDK did not register")
    if document is not None and info.client_id != document:
        raise RuntimeError(f"the SDK registered {info.client_id} instead of using the document {document}")
    if sign_in.sign_ins != 1:
        raise RuntimeError(f"expected one sign-in, the SDK asked for {sign_in.sign_ins}")
    if storage.token_sets < 2:
        raise RuntimeError(f"expected a refresh, the SDK stored tokens {storage.token_sets} time(s)")
    print(
        f"ok: {'document' if document else 'registered'} {info.client_id} ({info.token_endpoint_auth_method}), one sign-in, "
        f"{storage.token_sets} token sets (refreshed), tools called before and after",
        flush=True,
    )


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: python_client.py URL USERNAME PASSWORD MODE [DOCUMENT_URL]")
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) == 6 else None))
