"""The API documentation and front page work with no internet: every asset is served locally."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_page_loads_its_assets_from_burgo_itself(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, "the docs page names no assets"
    for asset in assets:
        assert asset.startswith("/"), f"{asset} would need the internet"
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert fetched.content
    assert client.get("/openapi.json").json()["info"]["title"] == "Burgo"


def test_front_page_points_to_the_api(client: TestClient) -> None:
    index = client.get("/").json()
    assert index["name"] == "Burgo"
    assert index["ngsi-ld"] == "/ngsi-ld/v1/entities"
    for key in ("docs", "openapi", "health", "metrics"):
        assert client.get(index[key]).status_code == 200, key
