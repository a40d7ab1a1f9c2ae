#!/usr/bin/env python3
"""Browser test of the web chat page of `longctx serve` (src/serve/webui.html, served at /).

Drives headless Chromium (Debian's `chromium` + `chromium-driver`, see scripts/setup_serve.sh)
with selenium: opens the page, asks a question, clicks Send, and waits until the answer has
finished streaming (#stats data-state="done"). Checks that the assistant message is non-empty
and that it grew while streaming (at least 2 distinct non-empty lengths seen, recorded in the
page by a MutationObserver and by polling), then saves a screenshot.

    python3 tests/serve/webui_test.py --url http://127.0.0.1:PORT/ [--screenshot docs/serve_webui.png]

Exit 0 on success, 1 on failure, 77 (skip) when selenium or chromedriver is missing.
"""
import argparse
import os
import shutil
import sys
import time

SKIP = 77
CHROMEDRIVER = "/usr/bin/chromedriver"

# Installed in the page before Send: records the text length of the last assistant message at
# every DOM change, so streaming is seen even when updates come faster than the test polls.
OBSERVER_JS = """
window.__lengths = [];
const box = document.getElementById('messages');
new MutationObserver(() => {
  const all = box.querySelectorAll('.msg.assistant');
  if (all.length) window.__lengths.push(all[all.length - 1].textContent.length);
}).observe(box, {childList: true, subtree: true, characterData: true});
"""

STATE_JS = """
const all = document.querySelectorAll('#messages .msg.assistant');
const last = all.length ? all[all.length - 1] : null;
const stats = document.getElementById('stats');
return [last ? last.textContent : '', stats.dataset.state || '', stats.textContent,
        window.__lengths || []];
"""


def fail(msg):
    print(f"FAIL: webui: {msg}")
    sys.exit(1)


def first_line(e):
    """A selenium exception's message without its stack trace."""
    return ((getattr(e, "msg", None) or str(e)).strip().splitlines() or [type(e).__name__])[0]


def main():
    if hasattr(sys.stdout, "reconfigure"):  # the stats line has non-ASCII dots; never crash on them
        sys.stdout.reconfigure(errors="backslashreplace")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the server's page, e.g. http://127.0.0.1:8080/")
    ap.add_argument("--screenshot", help="save a PNG of the page after the answer")
    ap.add_argument("--question", default="What is the capital of France?")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")
    args = ap.parse_args()

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError as e:
        print(f"SKIP: selenium is not installed ({e}); run scripts/setup_serve.sh")
        sys.exit(SKIP)
    if not os.access(CHROMEDRIVER, os.X_OK):
        print(f"SKIP: {CHROMEDRIVER} is missing; run scripts/setup_serve.sh (Debian chromium-driver)")
        sys.exit(SKIP)

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1100,800"):
        opts.add_argument(a)
    chromium = shutil.which("chromium")
    if chromium:
        opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:  # noqa: BLE001 - any start failure is a test failure
        fail(f"could not start headless Chromium: {first_line(e)}")

    try:
        driver.set_page_load_timeout(30)
        try:
            driver.get(args.url)
        except Exception as e:  # noqa: BLE001
            fail(f"could not load {args.url}: {first_line(e)}")
        wait = WebDriverWait(driver, 15)
        try:
            for el in ("system", "temperature", "max-tokens", "input", "send", "stop",
                       "messages", "stats"):
                wait.until(EC.presence_of_element_located((By.ID, el)))
        except Exception:  # noqa: BLE001
            fail(f"page at {args.url} lacks element #{el} (title {driver.title!r})")
        temp = driver.find_element(By.ID, "temperature").get_attribute("value")
        max_tokens = driver.find_element(By.ID, "max-tokens").get_attribute("value")
        if temp != "0.7" or max_tokens != "256":
            fail(f"defaults: temperature {temp!r} (want 0.7), max tokens {max_tokens!r} (want 256)")

        driver.execute_script(OBSERVER_JS)
        box = driver.find_element(By.ID, "input")
        box.clear()
        box.send_keys(args.question)
        driver.find_element(By.ID, "send").click()

        t0 = time.monotonic()
        polled = set()
        text = state = stats = ""
        observed = []
        while True:
            text, state, stats, observed = driver.execute_script(STATE_JS)
            if text and state in ("streaming", "done"):
                polled.add(len(text))
            if state == "done" and text:
                break
            if state == "error":
                fail(f"the page shows an error: {stats!r} (assistant message {text!r})")
            if time.monotonic() - t0 > args.timeout:
                fail(f"no finished answer after {args.timeout:.0f} s: state {state!r}, "
                     f"stats {stats!r}, assistant text {text!r}")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0

        users = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages .msg.user")]
        if not users or users[-1].strip() != args.question:
            fail(f"the user's message is not shown (user messages: {users!r})")
        if driver.find_element(By.ID, "send").get_attribute("disabled") is not None:
            fail("Send is still disabled after the answer finished")
        if driver.find_element(By.ID, "stop").get_attribute("disabled") is None:
            fail("Stop is still enabled after the answer finished")
        lengths = sorted(polled | {n for n in observed if n > 0})
        if len(lengths) < 2:
            fail(f"no streaming seen: the answer appeared at once (lengths seen {lengths}, "
                 f"text {text!r})")

        severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        for m in severe:
            print(f"warning: browser console: {m}")

        if args.screenshot:
            d = os.path.dirname(os.path.abspath(args.screenshot))
            os.makedirs(d, exist_ok=True)
            if not driver.save_screenshot(args.screenshot):
                fail(f"could not save the screenshot to {args.screenshot}")

        short = text if len(text) <= 80 else text[:77] + "..."
        print(f"PASS: webui streamed {len(text)} chars in {len(lengths)} distinct lengths in "
              f"{elapsed:.1f} s; stats: {stats}; answer: {short!r}"
              + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
