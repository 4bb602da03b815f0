"""The web page in headless Chromium, against a live `musicgen-ft serve`."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import Browser
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from serving_support import OTHER_TOKEN, TOKEN, Server, client, wait_until, write_fake_trainer

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


def test_a_musician_trains_listens_tries_and_downloads_in_the_browser(
    tmp_path: Path, example_archive: Path
) -> None:
    """The whole loop through the page alone: sign in, upload the bundled example, review
    and edit its labels, train `debug`, watch it, listen, generate, download."""
    server = Server(tmp_path).start()
    downloads = tmp_path / "downloads"
    browser = Browser("train_in_the_browser", downloads)
    d = browser.driver
    try:
        sign_in(browser, server, TOKEN)
        d.get(server.url + "/#/new")
        browser.by_label("Dataset").send_keys(str(example_archive))
        browser.shot("new_training")

        # label review: automatic labels per file, edited, saved as the labels file
        browser.button("Review labels").click()
        table = browser.wait(lambda d: d.find_elements(By.ID, "labels"), 120)[0]
        sources = [
            r.get_attribute("data-source")
            for r in table.find_elements(By.CSS_SELECTOR, "tr[data-source]")
        ]
        assert len(sources) == 3 and "album/bright_arpeggio.wav" in sources
        for field in table.find_elements(By.CSS_SELECTOR, "input[data-key=description]"):
            field.clear()
            field.send_keys("edited in the browser")
        browser.shot("label_review")
        browser.button("Save labels").click()
        labels_file = d.find_element(By.NAME, "labels_file")
        browser.wait(lambda d: "/v1/files/" in (labels_file.get_attribute("value") or ""))

        settings = {"model_version": "debug", "epochs": "2", "updates_per_epoch": "3",
                    "batch_size": "2", "sample_prompts": "1", "sample_duration": "2"}  # fmt: skip
        for name, value in settings.items():
            node = d.find_element(By.NAME, name)
            if node.tag_name == "select":
                Select(node).select_by_value(value)
            else:
                node.clear()
                node.send_keys(value)
        for name in ("drop_vocals", "auto_labeling"):
            box = d.find_element(By.NAME, name)
            if box.is_selected():
                box.click()
        browser.button("Start training").click()

        status = browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-status]"), 30)[0]
        assert "#/trainings/" in d.current_url
        steps: list[float] = []

        def advancing(d: Any) -> bool:
            bar = d.find_element(By.ID, "train-progress")
            value = float(bar.get_attribute("value") or 0)
            if not steps or value > steps[-1]:
                steps.append(value)
                if len(steps) == 2:
                    browser.shot("training_progress")
            return status.get_attribute("data-status") in ("succeeded", "failed", "canceled")

        browser.wait(advancing, 400)
        assert status.get_attribute("data-status") == "succeeded", d.find_element(
            By.ID, "log"
        ).text[-2000:]
        assert len(steps) >= 2 and steps[-1] == 6  # the bar moved, and ended at 2 x 3 updates
        d.refresh()  # the page survives a reload
        status = browser.wait(
            lambda d: d.find_elements(By.CSS_SELECTOR, "[data-status=succeeded]"), 30
        )[0]

        # samples play: each <audio> loads its clip
        players = browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".samples audio"), 30)
        assert len(players) == 2  # fine-tuned and base for one prompt
        for player in players:
            d.execute_script("arguments[0].play().catch(() => {})", player)
            browser.wait(
                lambda d, p=player: d.execute_script("return arguments[0].readyState", p) >= 1
            )
            assert d.execute_script("return arguments[0].duration", player) == pytest.approx(
                2, abs=0.1
            )
        assert (
            "edited in the browser" in d.find_element(By.CSS_SELECTOR, ".samples figcaption").text
        )
        quality = d.find_element(By.CSS_SELECTOR, ".quality").text
        assert quality.startswith("quality: ") and "Quality report (JSON)" in quality
        browser.wait(lambda d: "3 files used" in d.find_element(By.ID, "report").text)
        browser.shot("result")

        # try it: a prompt becomes a prediction played in the page
        prompt = browser.by_label("Prompt")
        prompt.clear()
        prompt.send_keys("warm pad in C major")
        duration = browser.by_label("Duration (s)")
        duration.clear()
        duration.send_keys("1")
        browser.button("Generate").click()
        made = browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#generated audio"), 180)[0]
        browser.wait(lambda d: d.execute_script("return arguments[0].readyState", made) >= 1)
        assert d.execute_script("return arguments[0].duration", made) == pytest.approx(1, abs=0.1)
        browser.shot("generated")

        # download the weights through the link
        link = d.find_element(By.LINK_TEXT, "Download weights")
        link.click()
        tar_path = downloads / "trained_model.tar"
        wait_until(lambda: tar_path.is_file() and tarfile.is_tarfile(tar_path), 60, "the download")
        with tarfile.open(tar_path) as tar:
            assert "state_dict.bin" in tar.getnames() and "quality.json" in tar.getnames()

        # the list shows it, newest first
        d.get(server.url + "/#/")
        browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "td [data-status=succeeded]"), 30)
        browser.shot("list")
    finally:
        browser.quit()
        server.stop()
