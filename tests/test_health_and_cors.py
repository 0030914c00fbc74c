"""Liveness, readiness, OpenAPI and CORS."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from server.settings import Settings
from tests.conftest import client_for


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "webhook_failures": 0}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


async def test_ready_is_503_when_the_database_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    # A port where nothing listens: the process is alive, the database is not.
    async with client_for(make_settings(database_url="postgresql://u@127.0.0.1:1/none")) as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"security"} <= set(spec["paths"]["/api/tasks"]["get"])
    assert (await client.get("/docs")).status_code == 200


async def test_every_operation_and_parameter_is_described(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert parameter.get("description"), (method, path, parameter["name"])
            for status in ("401", "404", "422", "429", "503"):
                if path.startswith("/api/"):
                    body = operation["responses"][status]["content"]["application/json"]
                    assert body["schema"]["$ref"].endswith("/ErrorBody"), (method, path, status)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_nothing_from_the_internet(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/"), f"{page} loads {source} from elsewhere"
        assert (await client.get(source)).status_code == 200
    assert "/openapi.json" in html


async def test_cors_allows_only_configured_origins(make_settings: Callable[..., Settings]) -> None:
    async with client_for(make_settings(cors_origins=["http://localhost:3000"])) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        ok = await client.options(
            "/api/tasks", headers={"Origin": "http://localhost:3000", **preflight}
        )
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = await client.options(
            "/api/tasks", headers={"Origin": "http://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in response.headers


async def test_uptime_checkers_may_ask_for_the_page_with_head(
    make_settings: Callable[..., Settings],
) -> None:
    async with client_for(make_settings(web_ui=True)) as client:
        page = await client.head("/")
        assert page.status_code == 200 and page.content == b""
        assert page.headers["content-type"].startswith("text/html")


async def test_a_method_a_path_does_not_answer_names_every_method_it_does(
    client: httpx.AsyncClient,
) -> None:
    options = await client.options("/api/tasks")
    assert options.status_code == 405 and options.json()["error"] == "method_not_allowed"
    assert options.headers["allow"] == "GET, POST"
    trace = await client.request("TRACE", "/api/tasks/5")
    assert trace.headers["allow"] == "GET, PUT, PATCH, DELETE"
