"""The demo in a real headless browser: Debian's Chromium driven by Playwright (nothing is downloaded).

Loads the page, uploads the bundled s0010_re record (.hea + .dat together), asks a question, waits for the
streamed answer and saves a screenshot (path printed; ``$ECGLLM_TEST_ARTIFACTS`` or runs/test_artifacts/).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from demo_fakes import FakeChat

from demo.app import DemoConfig, serve

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get(
        "ECGLLM_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "runs" / "test_artifacts"
    )
)
WFDB = Path("encoder/resources/wfdb").resolve()
EXAMPLE_B = "synthetic sinus tachycardia, 110 bpm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_upload_ask_and_screenshot(browser):
    chat = FakeChat()
    with serve(chat, DemoConfig(port=_free_port())) as (_, url):
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("not for diagnosis", exact=False).first.wait_for(timeout=30_000)

        page.locator("#files_A input[type=file]").set_input_files(
            [WFDB / "s0010_re.hea", WFDB / "s0010_re.dat"]
        )
        page.get_by_text("ECG A loaded", exact=False).wait_for(timeout=60_000)
        page.locator("#plot_A img").first.wait_for(timeout=30_000)
        page.locator("#probs_A img").first.wait_for(timeout=30_000)
        assert not page.locator("#plot_B").is_visible()  # ECG B's outputs stay hidden until B is loaded
        info = page.locator("#info_A").inner_text()
        assert "1000 Hz" in info and "12/12" in info

        page.locator("#question textarea").fill("Does this ECG show symptoms of myocardial infarction?")
        page.locator("#ask").click()
        page.get_by_text("strongest finding is", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text("Answer complete.", exact=False).wait_for(timeout=60_000)
        chat_text = page.locator("#chat").inner_text()
        assert "Does this ECG show symptoms of myocardial infarction?" in chat_text
        assert "Looking at 1 ECG(s): the strongest finding is" in chat_text
        assert "Evidence the model was given (aux head)" in chat_text  # the prompt's evidence, collapsible
        assert chat.calls and chat.calls[-1][0] == 1

        # pick a bundled example as ECG B and ask a comparison question
        page.locator("#example_B input").click()
        page.get_by_role("option", name=EXAMPLE_B).click()
        page.get_by_text("ECG B loaded", exact=False).wait_for(timeout=60_000)
        page.locator("#plot_B img").first.wait_for(timeout=30_000)
        page.locator("#question textarea").fill("Is the second ECG the same as the first ECG?")
        page.locator("#question textarea").press("Enter")
        page.get_by_text("Looking at 2 ECG(s)", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text("Answer complete.", exact=False).wait_for(timeout=60_000)
        assert chat.calls[-1][0] == 2 and len(chat.calls[-1][2]) == 1  # both ECGs, one earlier exchange

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "demo_browser.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot: {shot}")
        assert shot.stat().st_size > 50_000
        page.close()
