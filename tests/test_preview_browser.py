"""The preview page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by selenium loads the page of a running daemon, sees the live
stream change, draws a zone with the mouse, reads the YAML, saves it, takes a screenshot, and
draws a line rule.

Set ``EDGE_SCREENSHOT_DIR`` to keep the screenshot (the README's picture is made this way).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge.config import load_config
from edge.daemon.app import Application
from tests.conftest import wait_until
from tests.test_preview_server import start_daemon, stop_daemon

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs them: missing there is a broken set-up
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1300", f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def daemon(models_dir: Path, demo_clip: Path, tmp_path: Path) -> Iterator[Application]:
    # In real time, as a camera: the person stays in view long enough for the screenshot.
    app, runner = start_daemon(tmp_path, demo_clip, "{enabled: true, port: 0}", realtime=True)
    try:
        yield app
    finally:
        stop_daemon(app, runner)


FRAME_HASH = """
const img = document.querySelector('img.live');
if (!img || !img.naturalWidth) return null;
const c = document.createElement('canvas');
c.width = 64; c.height = 36;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0, 64, 36);
return Array.from(ctx.getImageData(0, 0, 64, 36).data).join(',');
"""


def test_live_view_and_zone_editor_in_chromium(daemon: Application, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver) and daemon.preview is not None
    driver = browser
    driver.get(daemon.preview.url)

    # The live view shows frames, and they change: the stream delivers.
    wait_until(lambda: driver.execute_script(FRAME_HASH) is not None, 120, "the first streamed frame")
    first = driver.execute_script(FRAME_HASH)
    wait_until(lambda: driver.execute_script(FRAME_HASH) != first, 120, "a later streamed frame")
    bar = driver.find_element(By.CSS_SELECTOR, "[data-camera=gate] .bar")
    wait_until(lambda: "streaming" in bar.text and "fps" in bar.text, 60, "the camera's status line")
    # The astronaut walks into the zone: the event and its picture appear in the list.
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#events li img"), 240, "an event with a picture"
    )

    # Draw a zone: four clicks on the frozen frame.
    driver.find_element(By.CSS_SELECTOR, "[data-camera=gate] .edit-btn").click()
    canvas = driver.find_element(By.ID, "editor-canvas")
    wait_until(lambda: canvas.get_attribute("data-ready") == "1", 60, "the frozen frame in the editor")
    name = driver.find_element(By.ID, "rule-name")
    name.clear()
    name.send_keys("door")
    driver.find_element(By.ID, "rule-labels").send_keys("person")
    rect = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", canvas
    )
    w, h = float(rect[0]), float(rect[1])
    targets = [(0.1, 0.2), (0.4, 0.2), (0.4, 0.8), (0.1, 0.8)]
    for fx, fy in targets:
        # Offsets are from the element's centre (W3C actions).
        ActionChains(driver).move_to_element_with_offset(
            canvas, round(fx * w - w / 2), round(fy * h - h / 2)
        ).click().perform()
    status = driver.find_element(By.ID, "check-status")
    wait_until(
        lambda: status.get_attribute("data-points") == "4" and status.text.startswith("valid"),
        60, "the editor's check of the four points to pass",
    )  # fmt: skip
    snippet = yaml.safe_load(driver.find_element(By.ID, "yaml").text)
    rule = snippet["rules"]["door"]
    assert rule["cameras"] == ["gate"] and rule["labels"] == ["person"]
    assert len(rule["zone"]) == 4
    for (x, y), (fx, fy) in zip(rule["zone"], targets, strict=True):
        assert abs(x - fx) <= 2 / w + 0.002 and abs(y - fy) <= 2 / h + 0.002, (rule["zone"], targets)

    def person_tracked() -> bool:
        frame = daemon.tap.latest("gate") if daemon.tap is not None else None
        ids = None if frame is None else frame.dets.tracker_id
        return ids is not None and bool((ids >= 1).any())

    wait_until(person_tracked, 120, "the person tracked in the live view")  # the clip loops
    shot = tmp_path / "preview.png"
    time.sleep(0.5)  # let that stream frame paint
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("EDGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "preview.png")

    # Save writes a new file beside the config, never over it.
    original = (tmp_path / "edge.yaml").read_text()
    driver.find_element(By.ID, "save").click()
    saved = driver.find_element(By.ID, "saved-path")
    wait_until(lambda: saved.text.startswith("written to"), 60, "the saved file's path")
    (new,) = tmp_path.glob("edge.preview-*.yaml")
    assert str(new) in saved.text
    assert (tmp_path / "edge.yaml").read_text() == original
    assert load_config(new).config.rules["door"].labels == ["person"]

    # A line rule: two clicks, start and end; a third click moves the end.
    driver.find_element(By.CSS_SELECTOR, "input[name=kind][value=line]").click()
    driver.find_element(By.ID, "clear").click()
    name.clear()
    name.send_keys("walkway")
    clicks = [(0.5, 0.85), (0.5, 0.5), (0.45, 0.3)]
    for fx, fy in clicks:
        ActionChains(driver).move_to_element_with_offset(
            canvas, round(fx * w - w / 2), round(fy * h - h / 2)
        ).click().perform()
    want = [clicks[0], clicks[2]]

    def line_drawn() -> bool:  # the check of the last click has come back (not the second's)
        if status.get_attribute("data-points") != "2" or not status.text.startswith("valid"):
            return False
        rule = (yaml.safe_load(driver.find_element(By.ID, "yaml").text) or {}).get("rules", {}).get("walkway")
        return bool(rule) and all(
            abs(x - fx) <= 2 / w + 0.002 and abs(y - fy) <= 2 / h + 0.002
            for (x, y), (fx, fy) in zip(rule.get("line", []), want, strict=False)
        ) and len(rule.get("line", [])) == 2

    wait_until(line_drawn, 60, "the editor's check of the line, ending at the third click")
    line_rule = yaml.safe_load(driver.find_element(By.ID, "yaml").text)["rules"]["walkway"]
    assert line_rule["kind"] == "line" and line_rule["cameras"] == ["gate"]
