"""Headless Debian chromium for the page tests, through its chromedriver and selenium: nothing downloaded.

The flags keep chromium off the network (no background fetches, updates, sync or QUIC) and sandbox-free as
root; each browser gets a new profile directory and is quit, with its processes, when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--force-device-scale-factor=1")
DESKTOP = (1366, 900)
PHONE = (390, 844)


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextlib.contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def emulate(driver: webdriver.Chrome, size: tuple[int, int], *, mobile: bool) -> None:
    """A viewport of ``size`` CSS pixels, as a phone (``mobile``: meta viewport honoured) or a desktop."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile})


def screenshot(driver: webdriver.Chrome, path: Path, width: int, *, mobile: bool = False,
               max_height: int = 3200) -> None:
    """The page from its top, as tall as the document (up to ``max_height``), at ``width``."""
    emulate(driver, (width, 800), mobile=mobile)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    emulate(driver, (width, min(max(height, 600), max_height)), mobile=mobile)
    driver.execute_script("window.scrollTo(0, 0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
