"""The web page in headless Chromium, against a live `musicgen-ft serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from browser_support import Browser
from selenium.webdriver.common.by import By
from serving_support import OTHER_TOKEN, TOKEN, Server, client, write_fake_trainer

pytestmark = pytest.mark.slow


def sign_in(browser: Browser, server: Server, token: str) -> None:
    browser.driver.get(server.url + "/")
    browser.by_label("Token").send_keys(token)
    browser.button("Sign in").click()
    browser.wait(lambda d: d.find_element(By.ID, "nav").is_displayed())


def test_sign_in_keeps_the_token_out_of_urls_and_scopes_the_session(tmp_path: Path) -> None:
    fake = write_fake_trainer(tmp_path)
    server = Server(tmp_path, extra=["--trainer", f"{sys.executable} {fake}"]).start()
    browser = Browser("sign_in", tmp_path / "downloads")
    try:
        c = client(server)
        c.models.create("alice", "tuned", visibility="private", hardware="gpu")
        trainer = c.models.list().results[0]
        theirs = c.trainings.create(
            model=trainer.id, version=trainer.latest_version.id, destination="alice/tuned",
            input={"dataset_path": "http://127.0.0.1:1/ok.zip", "model_version": "debug"},
        )  # fmt: skip

        # no session: the page asks for the token, the API answers 401
        browser.driver.get(server.url + "/")
        assert browser.by_label("Token").get_attribute("type") == "password"
        browser.shot("sign_in")
        assert httpx.get(f"{server.url}/v1/trainings").status_code == 401
        browser.by_label("Token").send_keys("wrong")
        browser.button("Sign in").click()
        browser.wait(lambda d: "Invalid token" in d.find_element(By.ID, "notice").text)

        sign_in(browser, server, OTHER_TOKEN)
        browser.shot("signed_in_other_token")
        assert (
            TOKEN not in browser.driver.current_url
            and OTHER_TOKEN not in browser.driver.current_url
        )
        cookie = browser.driver.get_cookie("musicgen_ft_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert OTHER_TOKEN not in cookie["value"]
        # the other token's session cannot see alice's training, through the page or the API
        with httpx.Client(base_url=server.url, cookies={cookie["name"]: cookie["value"]}) as s:
            assert s.get(f"/v1/trainings/{theirs.id}").status_code == 404
            assert s.get(f"/v1/trainings/{theirs.id}/progress").status_code == 404
            assert s.get("/v1/trainings").json()["results"] == []
            # a state change with the cookie alone (a cross-site form) is refused
            assert s.post(f"/v1/trainings/{theirs.id}/cancel").status_code == 403
            forged = cookie["value"][:-4] + "0000"
            s.cookies.set(cookie["name"], forged)
            assert s.get("/v1/trainings").status_code == 401
        browser.driver.get(f"{server.url}/#/trainings/{theirs.id}")
        browser.wait(lambda d: "was not found" in d.find_element(By.ID, "notice").text)
        browser.shot("other_token_404")
        browser.button("Sign out").click()
        browser.by_label("Token")
        assert httpx.get(f"{server.url}/ui/whoami").status_code == 401
    finally:
        browser.quit()
        server.stop()
