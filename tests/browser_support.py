"""Headless Chromium driven through chromium-driver (Debian's packages), for the web page.

Screenshots go to `$MUSICGEN_FT_TEST_ARTIFACTS` (default `test-artifacts/` in the repo),
one folder per test, so a failed CI run shows what the page looked like at each step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("MUSICGEN_FT_TEST_ARTIFACTS", REPO / "test-artifacts"))


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


class Browser:
    def __init__(self, name: str, downloads: Path) -> None:
        paths = chromium_paths()
        if paths is None:
            raise RuntimeError(
                "chromium and chromium-driver are not installed: run scripts/setup.sh"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=1200,1600", "--autoplay-policy=no-user-gesture-required",
                    "--disable-gpu", "--no-first-run"):  # fmt: skip
            options.add_argument(arg)
        downloads.mkdir(parents=True, exist_ok=True)
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
        service = webdriver.ChromeService(executable_path=paths[1])
        self.driver = webdriver.Chrome(options=options, service=service)
        self.shots = ARTIFACTS / name
        shutil.rmtree(self.shots, ignore_errors=True)
        self.shots.mkdir(parents=True)
        self._n = 0

    def shot(self, step: str) -> None:
        self._n += 1
        self.driver.save_screenshot(str(self.shots / f"{self._n:02d}_{step}.png"))

    def wait(self, condition: Any, timeout: float = 30) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)

    def by_label(self, text: str) -> Any:
        """The control whose <label> reads `text` (how a person finds it)."""
        label = self.wait(
            ec.presence_of_element_located((By.XPATH, f"//label[normalize-space()='{text}']"))
        )
        return self.driver.find_element(By.ID, label.get_attribute("for"))

    def button(self, text: str) -> Any:
        return self.wait(
            ec.element_to_be_clickable((By.XPATH, f"//button[normalize-space()='{text}']"))
        )

    def quit(self) -> None:
        self.driver.quit()
