"""End to end in headless Chromium: upload a recording, see the piece, follow it on the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.data import dataset as ds
from tests.conftest import TEST_PIECE, TRAIN_PIECE
from tests.server import add_piece, running_server


@pytest.mark.slow
def test_identify_and_follow_in_the_browser(tmp_path: Path, pdfs: dict[str, bytes], dataset: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "make test installs Debian's chromium and chromium-driver"
    recording = dataset / ds.AUDIO_DIR / f"{ds.piece_key(TEST_PIECE)}.flac"
    with running_server(tmp_path / "lib") as server:
        url = server.url
        add_piece(url, pdfs[TRAIN_PIECE], "Chorale")
        add_piece(url, pdfs[TEST_PIECE], "Op. 19 No. 2")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
            options.add_argument(arg)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
        try:
            browser.get(url + "/")
            wait = WebDriverWait(browser, 60)
            wait.until(ec.text_to_be_present_in_element((By.ID, "library"), "2 pieces"))
            browser.find_element(By.ID, "file").send_keys(str(recording))
            wait.until(ec.element_to_be_clickable((By.ID, "identify"))).click()
            first = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results li")))
            assert "Op. 19 No. 2" in first.text
            first.click()  # follow it (the page follows the top piece by itself only when it is a confident match)
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "press play"))
            wait.until(lambda b: b.execute_script("return document.getElementById('page').naturalWidth") > 0)
            browser.execute_script("const p = document.getElementById('player'); p.currentTime = 6.0;"
                                   "p.dispatchEvent(new Event('timeupdate'));")  # fmt: skip
            wait.until(ec.text_to_be_present_in_element((By.ID, "where"), "page 1"))
            cursor = browser.find_element(By.ID, "cursor")
            assert cursor.is_displayed() and cursor.size["width"] > 5
            browser.save_screenshot(str(tmp_path / "follow.png"))
        finally:
            browser.quit()
