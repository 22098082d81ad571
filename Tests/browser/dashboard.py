#!/usr/bin/env python3
"""The dashboard in a real browser (headless Chromium through Selenium), driven by
DashboardBrowserTests: pages render, hostile text stays text, a dead job is retried by clicking,
the overview's numbers move while a drain runs (live refresh, no reload).

    dashboard.py BASE_URL DEAD_JOB_ID DRAIN_SIGNAL_FILE SCREENSHOT_DIR
Exits 0 when every check passed; otherwise prints what failed and exits 1.
"""
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, dead_id, signal_file, screenshots = sys.argv[1:5]
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message, flush=True)


def no_alert(page):
    try:
        browser.switch_to.alert
        failures.append(f"{page}: a script ran (an alert is open)")
    except NoAlertPresentException:
        pass


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(flag)
browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
browser.set_page_load_timeout(20)
try:
    for path, title in (("/", "Overview"), ("/queues", "Queues"), ("/workers", "Workers"), ("/dead", "Dead jobs")):
        browser.get(base + path)
        check(title in browser.title, f"{path}: title is {browser.title!r}")
        check(browser.find_element(By.TAG_NAME, "h1").text == title, f"{path}: heading")
        no_alert(path)
        if screenshots:
            browser.save_screenshot(os.path.join(screenshots, (path.strip("/") or "overview") + ".png"))

    # Hostile text renders as text: the literal markup is visible, and nothing ran.
    browser.get(base + "/dead")
    body = browser.find_element(By.TAG_NAME, "body").text
    check("<img src=x onerror=alert(2)>" in body, "/dead: the hostile type is not shown as text")
    check(not browser.find_elements(By.CSS_SELECTOR, "main img"), "/dead: a hostile <img> became an element")
    no_alert("/dead")

    # Retry the dead job from its row.
    row = browser.find_element(By.XPATH, f"//tr[td/a[contains(@href, '/dead/{dead_id}')]]")
    row.find_element(By.XPATH, ".//button[text()='retry']").click()
    time.sleep(0.5)
    check("done=retried" in browser.current_url, f"retry: landed on {browser.current_url}")
    check("sent back to their queue" in browser.find_element(By.TAG_NAME, "body").text, "retry: no confirmation shown")
    check(not browser.find_elements(By.XPATH, f"//a[contains(@href, '/dead/{dead_id}')]"), "retry: the job is still listed as dead")

    # The overview's numbers move while a drain runs, without a reload.
    browser.get(base + "/")
    waiting = browser.find_element(By.CSS_SELECTOR, "[data-live='waiting']")
    before = waiting.text
    open(signal_file, "w").close()  # the test starts the drain now
    deadline = time.time() + 15
    while time.time() < deadline and waiting.text == before:
        time.sleep(0.25)
    check(waiting.text != before, f"overview: 'waiting' stayed at {before} while the queue drained")
    check(browser.execute_script("return performance.getEntriesByType('navigation').length") == 1, "overview: the page reloaded")
finally:
    browser.quit()

if failures:
    print(f"{len(failures)} browser check(s) failed", flush=True)
    sys.exit(1)
print("browser checks passed", flush=True)
