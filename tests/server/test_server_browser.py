"""The web page in headless Chromium (Playwright driving the system's /usr/bin/chromium).

Skipped when Playwright or a Chromium binary is missing; CI installs Debian's chromium.
"""

import shutil
from contextlib import contextmanager

import pytest

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH")


@contextmanager
def page_on(url):
    """A Chromium page at ``url`` and the list its uncaught script errors go to."""
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


def result_ids(page):
    return (
        page.locator(".turn")
        .last.locator(".results img")
        .evaluate_all("imgs => imgs.map(i => i.alt)")
    )


def images_loaded(page):
    """Every result image of the last turn has decoded (naturalWidth > 0)."""
    page.wait_for_function(
        """() => {
            const imgs = [...document.querySelectorAll('.turn:last-of-type .results img')];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        timeout=30_000,
    )


def test_chat_page_shows_results_asks_and_refines(serve_cli):
    with serve_cli("--checkpoint", "memory") as (url, _), page_on(url) as (page, errors):
        page.wait_for_function("document.getElementById('about').textContent.includes('60 images')")

        page.fill("#message", "a red circle")
        page.click("#send")
        page.wait_for_selector(".turn .question", timeout=60_000)
        images_loaded(page)
        first = result_ids(page)
        question = page.locator(".turn .question").last.inner_text()
        assert len(first) == 12 and question.endswith("?")
        assert page.locator(".turn .strategy").last.inner_text() == "text"
        assert "[retrieve]" in page.locator(".turn .steps").last.inner_text()

        # each result says why it ranks: the terms of its score, first the similarity
        page.locator(".turn").last.locator(".results .why-button").first.click()
        page.wait_for_selector(".turn .why .why-term")
        why = page.locator(".turn .why").last.inner_text()
        assert f"{first[0]}: #1" in why and "similarity" in why

        # the question's options are buttons: tab to the first one, Enter answers it
        buttons = page.locator(".turn").nth(0).locator(".options button")
        labels = buttons.all_inner_texts()
        assert len(labels) >= 2 and labels[-1] == "i don't know"
        buttons.first.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('.turn .question').length == 2")
        images_loaded(page)
        assert page.locator(".user").last.inner_text() == labels[0]
        assert result_ids(page) != first
        assert page.locator(".turn .question").last.inner_text() != question
        assert buttons.first.is_disabled()  # an answered question's buttons are spent
        assert page.locator(".turn").nth(0).locator(".why-button").first.is_disabled()
        page.locator(".turn").last.locator(".why-button").nth(1).click()
        page.wait_for_function(
            "document.querySelectorAll('.turn')[1].querySelector('.why .why-term')"
        )
        assert "answer: " in page.locator(".turn").last.locator(".why").inner_text()

        page.locator(".turn").last.locator(".results figure").nth(2).click()
        picked = page.inner_text("#reference-id")
        assert page.is_visible("#reference") and picked == result_ids(page)[2]
        page.fill("#message", "make it green")
        page.click("#send")
        page.wait_for_function("document.querySelectorAll('.turn .question').length == 3")
        images_loaded(page)
        assert page.locator(".user").last.inner_text() == f"edit {picked}: make it green"
        assert page.is_hidden("#reference") and picked not in result_ids(page)
        thumb = page.locator(".turn").last.locator("img.reference-thumb")
        assert thumb.get_attribute("alt") == f"reference {picked}"
        page.wait_for_function(
            "document.querySelector('.turn:last-of-type img.reference-thumb').naturalWidth > 0"
        )
        assert not errors, errors


def test_dar_and_stitch_turns_show_what_they_imagined_and_described(serve_cli):
    serve = serve_cli("--checkpoint", "memory", "--strategy", "auto", "--generate")
    with serve as (url, _), page_on(url) as (page, errors):
        page.fill("#message", "a red circle on a white background")
        page.click("#send")
        page.wait_for_selector(".turn .question", timeout=120_000)
        assert page.locator(".turn .strategy").last.inner_text() == "dar"
        page.wait_for_function(
            """() => {
                const imgs = [...document.querySelectorAll('.turn .imagined img')];
                return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
            }""",
            timeout=60_000,
        )
        page.locator(".turn").last.locator(".results figure").nth(0).click()
        page.fill("#message", "make the circle blue")
        page.click("#send")
        page.wait_for_function(
            "document.querySelectorAll('.turn .question').length == 2", timeout=120_000
        )
        assert page.locator(".turn .strategy").last.inner_text() == "stitch"
        described = page.locator(".turn").last.locator(".descriptions")
        described.locator("summary").click()
        lines = described.locator("div").all_inner_texts()
        assert lines and any("blue" in line for line in lines)
        assert not errors, errors
