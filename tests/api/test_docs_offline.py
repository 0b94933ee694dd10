"""/docs (Swagger UI) and /redoc work on a closed network: their pages name only assets of
this server, and those assets (from the installed fastapi-offline package) are served."""

from __future__ import annotations

import re

import httpx
import pytest

from api.main import API_PREFIX, create_app
from firetower.settings import Settings

ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _app() -> httpx.AsyncClient:
    # The pages and their assets need no database: the lifespan is not run here.
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize(("page", "needs"), [
    ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
    ("/redoc", ("redoc.standalone.js",)),
])
async def test_docs_pages_reference_only_local_assets_that_are_served(
        page: str, needs: tuple[str, ...]) -> None:
    async with _app() as client:
        r = await client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html, html
        refs = [a or b for a, b in ASSET.findall(html)]
        assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
        for name in needs:
            assert any(ref.endswith(name) for ref in refs), (name, refs)
        assert f"{API_PREFIX}/openapi.json" in refs
        for ref in refs:
            got = await client.get(ref)
            assert got.status_code == 200, ref
            suffix = next((s for s in TYPES if ref.endswith(s)), None)
            if suffix is not None:
                assert TYPES[suffix] in got.headers["content-type"], (ref, got.headers)
                assert len(got.content) > 1000, ref  # the real bundle, not an empty file
            else:
                assert got.json()["info"]["title"] == "Firetower"
