#!/usr/bin/python3
"""dashboard_browser.py - drive the authority's dashboard in real headless
Chromium (selenium + chromedriver) for tests/e2e/dashboard.sh and
bench/dashboard.sh.

  dashboard_browser.py URL SHOTDIR CMD [ARGS]
    wait-service SERVICE NPEERS   the service row shows NPEERS peers up
    wait-down SERVICE PEERHEX SECONDS   that peer's line turns to down
    text-shown TEXT               TEXT appears as text in the reports table,
                                  and no script from the page data ran
    load SERVICE                  seconds until the page shows SERVICE
    peer-runs SERVICE             (a peer's object server page) its runs
                                  table lists SERVICE, and figures show
Prints "ok ..." or "fail ..." and exits 0/1; saves SHOTDIR/CMD.png.
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    o = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1400,1000",
              "--no-proxy-server"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                            options=o)


def poll(deadline, fn):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # the table is being replaced: ask again
            pass
        time.sleep(0.2)
    return None


def peer_states(d, service):
    rows = d.find_elements(By.CSS_SELECTOR, "tr.service")
    for r in rows:
        if r.get_attribute("data-service") == service:
            return {p.get_attribute("data-peer"):
                    p.find_element(By.TAG_NAME, "span").text
                    for p in r.find_elements(By.CSS_SELECTOR, "div.peer")}
    return None


def main():
    url, shots, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    d = browser()
    ok = False
    try:
        t0 = time.monotonic()
        d.get(url)
        if cmd == "wait-service":
            svc, n = args[0], int(args[1])
            got = poll(60, lambda: (lambda s: s if s is not None and
                       list(s.values()).count("up") == n else None)(
                           peer_states(d, svc)))
            ok = got is not None
            print(("ok" if ok else "fail"), "service", svc, "peers",
                  peer_states(d, svc))
        elif cmd == "wait-down":
            svc, peer, secs = args[0], args[1], float(args[2])
            got = poll(secs, lambda: (peer_states(d, svc) or {}).get(peer)
                       == "down")
            ok = bool(got)
            print(("ok" if ok else "fail"), "peer", peer[:12], "after",
                  "%.1fs" % (time.monotonic() - t0), peer_states(d, svc))
        elif cmd == "text-shown":
            text = args[0]
            got = poll(30, lambda: any(text in td.text for td in
                       d.find_elements(By.CSS_SELECTOR, "#reports td")))
            ran = d.execute_script("return window.fed23_pwned === true")
            scripts = len(d.find_elements(By.CSS_SELECTOR,
                                          "#reports script"))
            ok = bool(got) and not ran and scripts == 0
            print(("ok" if ok else "fail"), "shown as text:", bool(got),
                  "script ran:", bool(ran), "script elements:", scripts)
        elif cmd == "peer-runs":
            svc = args[0]
            got = poll(30, lambda: any(svc == td.text for td in
                       d.find_elements(By.CSS_SELECTOR, "#runs td")) and
                       "requests" in d.find_element(By.ID, "serves").text)
            ok = bool(got)
            print(("ok" if ok else "fail"), "peer page:",
                  d.find_element(By.TAG_NAME, "body").text[:300]
                  .replace("\n", " | "))
        elif cmd == "load":
            svc = args[0]
            got = poll(120, lambda: any(r.get_attribute("data-service") == svc
                       for r in d.find_elements(By.CSS_SELECTOR,
                                                "tr.service")))
            ok = bool(got)
            print(("ok" if ok else "fail"), "load %.3f s" %
                  (time.monotonic() - t0))
        d.save_screenshot("%s/%s.png" % (shots, cmd))
    finally:
        d.quit()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
