"""A console user over HTTP: signs in through the form, sends each form's CSRF token."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1))


def field_error(page: str, field: str) -> str | None:
    """The error shown next to a form field (``id="e-<field>"``), if any."""
    found = re.search(rf'<p class="error" id="e-{re.escape(field)}">([^<]*)</p>', page)
    return html.unescape(found.group(1)) if found else None


class ConsoleUser:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf: str | None = None

    async def sign_in(self, username: str, api_key: str) -> httpx.Response:
        page = await self.client.get("/console/sign-in")
        answer = await self.client.post(
            "/console/sign-in",
            data={"csrf_token": form_token(page.text), "username": username, "api_key": api_key},
        )
        if answer.status_code == 303:
            shown = await self.get("/console/campaigns")
            assert shown.status_code == 200, shown.text
        return answer

    async def get(self, url: str, **options: Any) -> httpx.Response:
        answer = await self.client.get(url, **options)
        if answer.status_code == 200 and 'name="csrf_token"' in answer.text:
            self.csrf = form_token(answer.text)
        return answer

    async def post(self, url: str, data: dict[str, str] | None = None, **options: Any):  # type: ignore[no-untyped-def]
        assert self.csrf is not None, "sign in first"
        return await self.client.post(
            url, data={"csrf_token": self.csrf, **(data or {})}, **options
        )
