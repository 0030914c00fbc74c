"""The chat page in a real browser: Playwright driving Debian's Chromium against the app under
uvicorn. What the page shows is checked against what the API says.

A screenshot of the page after the first exchange is saved in `test-artifacts/`.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

# The browser driver is a group of its own (`uv sync --group browser`; .ci/run syncs it).
pytest.importorskip("playwright", reason="uv sync --group browser installs Playwright")
from playwright.async_api import Browser, Page, async_playwright, expect

from server.app import create_app
from server.settings import Settings
from server.web import sign_in_link
from tests.conftest import auth, make_token
from tests.fake_openai import FakeOpenAI, Step
from tests.live import served

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
ZONE = "America/New_York"


def _installed() -> bool:
    return Path(CHROMIUM).exists()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not _installed():
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        await launched.close()


class Site:
    """The app under uvicorn, and pages opened on it as one user or another."""

    def __init__(self, url: str, settings: Settings, browser: Browser) -> None:
        self.url = url
        self.settings = settings.model_copy(update={"public_url": url})
        self.browser = browser
        self.problems: list[str] = []

    async def open(self, user: str | None = None, link: str | None = None, **options: Any) -> Page:
        context = await self.browser.new_context(timezone_id=ZONE, locale="en-US", **options)
        page = await context.new_page()
        # A blocked inline script, a CSP violation or a script error all show up here.
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on(
            "console",
            lambda message: message.type == "error" and self.problems.append(message.text),
        )
        await page.goto(link or sign_in_link(self.settings, user or "alice"))
        return page

    def api(self, user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=auth(user), timeout=10)


@pytest.fixture
async def site(
    make_settings: Callable[..., Settings], clean_database: None, browser: Browser
) -> AsyncIterator[Callable[..., Any]]:
    """`await site(**settings)`: a server with the page on, built from those settings."""
    servers: list[Any] = []

    async def start(**overrides: Any) -> Site:
        settings = make_settings(web_ui=True, **overrides)
        server = served(create_app(settings))
        servers.append(server)
        return Site(await server.__aenter__(), settings, browser)

    yield start
    for server in reversed(servers):
        await server.__aexit__(None, None, None)


async def say(page: Page, message: str) -> None:
    await page.fill("#message", message)
    await page.press("#message", "Enter")


async def test_first_exchange_streams_shows_the_tool_and_the_task_in_local_time(
    site: Callable[..., Any],
) -> None:
    web: Site = await site()
    page = await web.open("alice")
    assert page.url == f"{web.url}/", "the token is taken out of the address bar"
    await expect(page.locator("#who")).to_have_text("Signed in as alice")

    async with page.expect_response("**/api/chat") as answered:
        await say(page, "add buy milk tomorrow at 5pm")
    response = await answered.value
    assert response.headers["content-type"].startswith("text/event-stream")

    reply = page.locator(".message.assistant").last
    await expect(reply.locator(".text")).to_contain_text('Added "Buy milk"')
    tool = reply.locator(".tools summary")
    await expect(tool).to_have_text(re.compile(r'^Added "Buy milk" \(#\d+\)$'))
    await tool.click()
    await expect(reply.locator(".tools pre")).to_contain_text('"title": "Buy milk"')
    await expect(page.locator("#announce")).to_contain_text('Added "Buy milk"')

    task = page.locator("#task-list li").first
    await expect(task).to_contain_text("Buy milk")
    # One way of writing a date: the task panel says it as the reply does.
    said = re.search(r"due (\w{3} \d{2} \w{3} \d{4}, 17:00 E[SD]T)", await reply.inner_text())
    assert said, await reply.inner_text()
    await expect(task.locator(".meta")).to_contain_text(f"due {said[1]}")
    async with web.api("alice") as api:
        [stored] = (await api.get("/api/tasks")).json()["data"]
    due = datetime.fromisoformat(stored["due"]).astimezone(ZoneInfo(ZONE))
    assert (due.date(), due.hour) == ((datetime.now(ZoneInfo(ZONE)) + timedelta(days=1)).date(), 17)
    await page.screenshot(path=ARTIFACTS / "chat-page.png", full_page=True)

    # Ticking the task completes it through REST.
    await task.locator("input[type=checkbox]").check()
    async with web.api("alice") as api:
        for _ in range(50):
            if (await api.get(f"/api/tasks/{stored['id']}")).json()["completed"]:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the tick did not complete the task")
    await expect(page.locator("#task-list li.done")).to_contain_text("Buy milk")

    # After a reload the conversation is listed, and opens with its messages.
    await page.reload()
    conversation = page.locator("#conversation-list .open")
    await expect(conversation).to_have_text(["add buy milk tomorrow at 5pm"])
    await page.click("#new-chat")
    await expect(page.locator(".message")).to_have_count(0)
    await conversation.click()
    await expect(page.locator(".message")).to_have_count(2)
    await expect(page.locator(".message.user")).to_have_text(re.compile("add buy milk"))
    assert web.problems == []


async def test_keyboard_phone_width_and_security_headers(site: Callable[..., Any]) -> None:
    web: Site = await site()
    page = await web.open("alice", viewport={"width": 390, "height": 844})
    # Shift+Enter breaks the line, Enter sends.
    await page.fill("#message", "add call mom")
    await page.press("#message", "Shift+Enter")
    await page.keyboard.type("tonight")
    assert await page.input_value("#message") == "add call mom\ntonight"
    await expect(page.locator(".message")).to_have_count(0)
    await page.fill("#message", "add call mom")
    await page.press("#message", "Enter")
    await expect(page.locator("#task-list li").first).to_contain_text("Call mom")
    # One column at phone width: the chat, then the tasks below it, nothing off screen.
    chat = await page.locator(".chat").bounding_box()
    tasks = await page.locator(".tasks").bounding_box()
    assert chat and tasks and tasks["y"] >= chat["y"] + chat["height"] - 1
    assert chat["width"] <= 390
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling"
    # The header is one line; "New chat" comes before the chat; the message box is on the
    # first screen, at its bottom, not in the middle of the page.
    header = await page.locator(".bar").bounding_box()
    new_chat = await page.locator("#new-chat").bounding_box()
    composer = await page.locator("#composer").bounding_box()
    assert header and header["height"] < 60
    assert new_chat and new_chat["y"] + new_chat["height"] <= chat["y"] + 1
    assert composer and 844 * 0.75 < composer["y"] + composer["height"] <= 844
    await page.screenshot(path=ARTIFACTS / "chat-page-390px.png", full_page=True)
    # Every control has a name a screen reader can say.
    for selector in ("#message", "#send", "#new-chat", "#task-list input"):
        assert await page.locator(selector).first.evaluate(
            "el => !!(el.labels?.length || el.textContent.trim() || el.getAttribute('aria-label'))"
        ), selector
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{web.url}/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.text and "style=" not in response.text
    assert web.problems == []


async def test_each_user_sees_only_their_own(site: Callable[..., Any]) -> None:
    web: Site = await site()
    async with web.api("alice") as api:
        sent = await api.post("/api/chat", json={"message": "add alice's secret plan"})
        assert sent.status_code == 200
    alice = await web.open("alice")
    await expect(alice.locator("#conversation-list .open")).to_have_count(1)
    await expect(alice.locator("#task-list li")).to_contain_text(["Alice's secret plan"])

    bob = await web.open("bob")
    await expect(bob.locator("#who")).to_have_text("Signed in as bob")
    await expect(bob.locator("#task-list li")).to_have_text(["No tasks yet."])
    await expect(bob.locator("#conversation-list .open")).to_have_count(0)
    assert "secret" not in await bob.content()


async def test_a_rejected_token_brings_back_the_sign_in(site: Callable[..., Any]) -> None:
    web: Site = await site()
    expired = make_token("alice", ttl=timedelta(minutes=-5))
    page = await web.open(link=f"{web.url}/#token={expired}")
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(page.locator("#sign-in-message")).to_contain_text("Sign in again")
    await expect(page.locator("#app")).to_be_hidden()
    # Pasting a good token signs in.
    await page.fill("#token-input", make_token("alice"))
    await page.click("#sign-in-form button")
    await expect(page.locator("#who")).to_have_text("Signed in as alice")
    await expect(page.locator("#task-list li")).to_have_text(["No tasks yet."])
    # Signing out forgets the token, also across a reload.
    await page.click("#sign-out")
    await page.reload()
    await expect(page.locator("#sign-in")).to_be_visible()


async def test_too_many_messages_says_when_to_retry(site: Callable[..., Any]) -> None:
    web: Site = await site(rate_limit_enabled=True, rate_limit_chat="1/minute")
    page = await web.open("alice")
    await say(page, "add buy milk")
    await expect(page.locator(".message.assistant .text").first).to_contain_text("Added")
    await say(page, "add buy eggs")
    alert = page.locator(".message.assistant .problem")
    await expect(alert).to_have_text(re.compile(r"Too many messages\. Try again in \d+ seconds?\."))
    async with web.api("alice") as api:
        titles = [t["title"] for t in (await api.get("/api/tasks")).json()["data"]]
    assert titles == ["Buy milk"]


async def test_a_failing_model_says_the_message_is_saved_and_retries(
    site: Callable[..., Any], fake: FakeOpenAI
) -> None:
    url: str = fake.url  # type: ignore[attr-defined]
    web: Site = await site(openai_base_url=url, agent_model="fake-model", agent_timeout=10)
    fake.script = []  # every call fails
    page = await web.open("alice")
    await say(page, "hello there")
    problem = page.locator(".message.assistant .problem")
    await expect(problem).to_contain_text("The model failed to answer")
    await expect(problem).to_contain_text("Your message is saved.")
    fake.script = [Step(text="Hello! All good now.")]
    await problem.locator("button", has_text="Retry").click()
    await expect(page.locator(".message.assistant .text").last).to_have_text("Hello! All good now.")
    await expect(page.locator(".message.user")).to_have_count(1)
    await page.reload()
    await expect(page.locator(".message")).to_have_count(2)
    assert web.problems == [] or all("502" in problem for problem in web.problems)


async def test_a_reminder_shows_in_the_open_page(site: Callable[..., Any]) -> None:
    web: Site = await site(background_jobs=True, events_poll_seconds=0.2)
    page = await web.open("alice")
    await expect(page.locator("#task-list li")).to_have_text(["No tasks yet."])
    remind_at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    async with web.api("alice") as api:
        made = await api.post("/api/tasks", json={"title": "Call the bank", "remind_at": remind_at})
        assert made.status_code == 201
    # Made elsewhere: the page hears of it from the event stream, then of its reminder.
    await expect(page.locator("#task-list li").first).to_contain_text("Call the bank")
    notice = page.locator("#notices li")
    await expect(notice).to_contain_text("Reminder: Call the bank", timeout=15_000)
    await notice.locator("button", has_text="Dismiss").click()
    await expect(notice).to_have_count(0)
    # Another reminder, then signing out: the sign-in screen shows no one's reminders.
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    async with web.api("alice") as api:
        await api.post("/api/tasks", json={"title": "Pay rent", "remind_at": soon})
    await expect(notice).to_contain_text("Reminder: Pay rent", timeout=15_000)
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    await expect(notice).to_have_count(0)
    assert web.problems == []
