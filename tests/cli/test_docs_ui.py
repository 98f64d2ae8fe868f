"""``/docs`` works offline: the page and every asset it loads come from this server."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


async def test_docs_page_names_no_other_host(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert URL.findall(page.text) == []
    assert "validatorUrl" in page.text  # the public validator's badge is turned off


async def test_every_asset_of_the_docs_page_is_served_with_its_type(client):
    page = await client.get("/docs")
    assets = ASSET.findall(page.text)
    assert {a.rsplit(".", 1)[-1] for a in assets} == {"js", "css", "png"}
    for path in assets:
        assert path.startswith("/docs/assets/"), path
        answer = await client.get(path)
        assert answer.status_code == 200, path
        expected = TYPES["." + path.rsplit(".", 1)[-1]]
        assert expected in answer.headers["content-type"], (path, answer.headers["content-type"])
        assert len(answer.content) > 100


async def test_the_docs_page_loads_the_openapi_document_it_names(client):
    page = await client.get("/docs")
    assert "url: '/openapi.json'" in page.text
    document = await client.get("/openapi.json")
    assert document.status_code == 200 and document.json()["info"]["title"] == "dialbase"
