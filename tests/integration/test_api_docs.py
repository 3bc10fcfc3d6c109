"""/docs and /redoc load only the package's own files: they work with no network access."""

from __future__ import annotations

import re

import httpx
import pytest

from habitjobs.api.docs import STATIC_DIR

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]|spec-url=["']([^"']+)["']""")


def referenced(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in ASSET.finditer(html)]


@pytest.mark.parametrize(
    ("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
async def test_docs_pages_load_only_local_files(client: httpx.AsyncClient, page: str, script: str) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    urls = referenced(answer.text)
    assert any(url.endswith(script) for url in urls), urls
    assert not re.search(r"https?://", answer.text.replace("http://www.w3.org", "")), (
        "loads from another host"
    )
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        if url.startswith("/static/docs/"):
            assert asset.content == (STATIC_DIR / url.removeprefix("/static/docs/")).read_bytes()
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "habitjobs"


async def test_the_vendored_files_keep_their_licenses(client: httpx.AsyncClient) -> None:
    for directory in ("swagger-ui", "redoc"):
        assert (STATIC_DIR / directory / "LICENSE").read_text().strip()
    readme = (STATIC_DIR / "README.md").read_text()
    assert "swagger-ui-dist" in readme
    assert "redoc" in readme
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await client.get("/static/docs/../docs.py")).status_code == 404
