#!/usr/bin/env python3
"""End-to-end browser test of the `diffuse serve` web app.

    python3 tests/serve/webapp_test.py --binary build/bin/diffuse \
        --model /work/shared/fixtures/models/tiny-sd1 --out-dir /tmp/webapp-test

Starts `BINARY serve` on a free port, drives the app at `/` with Playwright and Debian's chromium
(/usr/bin/chromium; never a downloaded browser): one generation (progress advances, the result image and a
gallery item appear, the PNG downloads with its metadata and loads back through "Load settings from PNG"),
then a long generation that is cancelled (UI and GET /api/v1/jobs/{id} both say `cancelled`), no console
errors, screenshots webapp-desktop.png / webapp-phone.png in --out-dir, and the server exits within 20 s
of SIGTERM. Exit status 0 on success; otherwise a one-line `FAIL: reason`.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError as exc:  # fail loudly: a missing tool must not look like a pass
    print(f"FAIL: Python playwright is not importable ({exc}); install it with `pip install playwright` "
          "(no `playwright install` needed: the test uses /usr/bin/chromium)", flush=True)
    sys.exit(2)


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, method="GET", timeout=10):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def log_tail(path, n=15):
    try:
        with open(path, "r", errors="replace") as f:
            lines = [l.rstrip() for l in f.readlines() if l.strip()]
        return " | ".join(lines[-n:])
    except OSError:
        return ""


def wait_health(base, proc, log_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure(f"server exited with status {proc.returncode} before /health answered: {log_tail(log_path)}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.2)
    raise TestFailure(f"GET /health did not return 200 within {timeout:.0f} s (last: {last})")


# Records every value the progress bar takes (the app sets the `value` attribute on each step).
RECORD_PROGRESS = """() => {
  const p = document.getElementById('progress');
  window.__progress = [];
  if (window.__progressObserver) window.__progressObserver.disconnect();
  window.__progressObserver = new MutationObserver(() => {
    if (p.hasAttribute('value')) window.__progress.push([Number(p.value), Number(p.max)]);
  });
  window.__progressObserver.observe(p, { attributes: true, attributeFilter: ['value', 'max'] });
}"""

# A finished job, or a request the server refused (the error banner).
TERMINAL = ("(['done', 'error', 'cancelled'].includes(document.getElementById('status').dataset.state)"
            " || !document.getElementById('error').hidden)")


def state_of(page):
    return page.evaluate("""() => ({
      state: document.getElementById('status').dataset.state,
      text: document.getElementById('status-text').textContent,
      error: document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent,
      job: document.getElementById('status').dataset.jobId })""")


def run(args):
    os.makedirs(args.out_dir, exist_ok=True)
    check(os.path.exists(args.binary), f"binary not found: {args.binary}")
    check(os.path.exists(args.chromium), f"chromium not found at {args.chromium}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(args.out_dir, "serve.log")
    log = open(log_path, "wb")
    cmd = [args.binary, "serve", "--model", args.model, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_health(base, proc, log_path)
        status, info = http_json(base + "/api/v1/info")
        check(status == 200 and isinstance(info, dict), "GET /api/v1/info did not return a JSON object")
        current = next((m for m in info.get("models", []) if m.get("name") == info.get("current_model")), None)
        check(current is not None, f"/api/v1/info: current_model {info.get('current_model')!r} is not in models")
        max_steps = int((info.get("limits") or {}).get("max_steps") or 150)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            try:
                browse(browser, base, info, current, max_steps, args)
            finally:
                browser.close()

        # The server must stop promptly on SIGTERM.
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise TestFailure("server did not exit within 20 s of SIGTERM")
        check(rc in (0, -signal.SIGTERM, 128 + signal.SIGTERM), f"server exited with status {rc} after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def browse(browser, base, info, current, max_steps, args):
    T = args.timeout * 1000  # ms, for waits that include generation
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))

    page.goto(base + "/")
    expect(page.locator("#server-info")).not_to_have_text("Connecting…", timeout=15000)
    check(page.locator("#error").is_hidden(), "error banner after load: " + page.locator("#error-text").inner_text())
    # Form defaults come from /api/v1/info.
    expect(page.locator("#model")).to_have_value(current["name"])
    if current.get("default_width"):
        expect(page.locator("#width")).to_have_value(str(current["default_width"]))
        expect(page.locator("#height")).to_have_value(str(current["default_height"]))
    n_sched = len(info.get("schedulers") or [])
    check(page.locator("#scheduler option").count() == max(n_sched, 1), "scheduler select does not list /api/v1/info's schedulers")

    # ---- run 1: a normal generation
    prompt = "a red lighthouse on a cliff, watercolor"
    steps = min(50, max_steps)  # enough steps that several progress events arrive before completion
    page.fill("#prompt", prompt)
    page.fill("#steps", str(steps))
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.evaluate(RECORD_PROGRESS)
    page.click("#generate")
    try:
        page.wait_for_function(f"() => {TERMINAL}", timeout=T)
    except PlaywrightError:
        raise TestFailure(f"first generation did not finish within {args.timeout} s: {state_of(page)}")
    st = state_of(page)
    check(st["state"] == "done", f"first generation ended as {st['state']!r}: {st['text']} {st['error']}".strip())
    values = page.evaluate("window.__progress")
    below_total = [v for v, mx in values if v < mx]
    increased = any(b > a for a, b in zip(below_total, below_total[1:]))
    check(increased, f"progress bar never advanced before completion (values seen: {[v for v, _ in values][:40]})")
    check(values and values[-1][0] == values[-1][1], f"progress bar not full after completion ({values[-1:]})")

    result = page.locator("[data-testid=result-image]").first
    expect(result).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=result-image]'); return i && i.complete && i.naturalWidth > 0; }")
    w, h = page.evaluate("() => { const i = document.querySelector('[data-testid=result-image]'); return [i.naturalWidth, i.naturalHeight]; }")
    check((w, h) == (64, 64), f"result image is {w}x{h}, asked for 64x64")
    expect(page.locator("[data-testid=gallery-item]")).to_have_count(1)
    expect(page.locator("#parameters")).to_contain_text(prompt)

    # Download PNG: the server's bytes as-is (with their A1111 parameters chunk), named diffuse-<seed>.png.
    with page.expect_download() as dl_info:
        page.click("#download")
    dl = dl_info.value
    check(dl.suggested_filename.startswith("diffuse-") and dl.suggested_filename.endswith(".png"),
          f"download named {dl.suggested_filename!r}, expected diffuse-<seed>.png")
    png_path = os.path.join(args.out_dir, "webapp-download.png")
    dl.save_as(png_path)
    data = open(png_path, "rb").read()
    check(data.startswith(b"\x89PNG\r\n\x1a\n"), "downloaded file is not a PNG")
    check(b"parameters" in data, "downloaded PNG carries no `parameters` text chunk")
    seed = dl.suggested_filename[len("diffuse-"):-len(".png")]

    # Load settings from that PNG (same code path as dropping it on the page): prompt and seed come back.
    page.fill("#prompt", "")
    page.fill("#seed", "-1")
    page.set_input_files("#load-png-file", png_path)
    expect(page.locator("#prompt")).to_have_value(prompt)
    if seed.isdigit():
        expect(page.locator("#seed")).to_have_value(seed)
    expect(page.locator(".toast").last).to_contain_text("Loaded from")

    expect(page.locator(".toast")).to_have_count(0, timeout=15000)  # let the toast fade before the screenshot
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.path.join(args.out_dir, "webapp-desktop.png"))

    # ---- run 2: a long generation, cancelled
    page.fill("#steps", str(max_steps))
    if current.get("default_width"):
        page.fill("#width", str(current["default_width"]))
        page.fill("#height", str(current["default_height"]))
    page.fill("#seed", "-1")
    page.click("#generate")
    try:
        page.wait_for_function(
            f"() => {TERMINAL} || (document.getElementById('status').dataset.state === 'running'"
            " && Number(document.getElementById('progress').value) >= 1)", timeout=T)
    except PlaywrightError:
        raise TestFailure(f"second generation never started running: {state_of(page)}")
    st = state_of(page)
    check(st["state"] == "running", f"second generation ended ({st['state']}) before it could be cancelled; "
          f"{max_steps} steps are too fast to observe: {st['text']} {st['error']}".strip())
    job_id = st["job"]
    check(job_id, "the status panel does not expose the job id (data-job-id)")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_attribute("data-state", "cancelled", timeout=30000)
    expect(page.locator("#status-text")).to_have_text("Cancelled")
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#generate")).to_be_enabled()
    deadline = time.monotonic() + 15
    while True:
        _, job = http_json(f"{base}/api/v1/jobs/{job_id}")
        if job.get("status") == "cancelled" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(job.get("status") == "cancelled", f"GET /api/v1/jobs/{job_id} says {job.get('status')!r} after Cancel, expected 'cancelled'")
    expect(page.locator("[data-testid=gallery-item]")).to_have_count(1)

    # ---- phone-sized window: single column, still usable
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("window.scrollTo(0, 0)")
    check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"),
          "phone layout scrolls horizontally")
    gen_box, out_box = page.locator("#generate").bounding_box(), page.locator(".output-panel").bounding_box()
    check(gen_box and out_box and gen_box["y"] < out_box["y"], "phone layout: the result panel is not below the prompt")
    page.screenshot(path=os.path.join(args.out_dir, "webapp-phone.png"))

    check(not console_errors, f"console errors: {console_errors[:3]}")
    context.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="path to the diffuse executable")
    ap.add_argument("--model", required=True, help="model directory (or name) for `diffuse serve --model`")
    ap.add_argument("--out-dir", required=True, help="where screenshots and the server log go")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="chromium executable (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed for one generation (default: %(default)s)")
    args = ap.parse_args()
    try:
        run(args)
    except TestFailure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    except PlaywrightError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"FAIL: browser: {first}", flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - any other error is a failure with a reason
        msg = " ".join(str(e).split())[:500]
        print(f"FAIL: {type(e).__name__}: {msg}", flush=True)
        return 1
    print(f"PASS: web app end-to-end (screenshots in {args.out_dir})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
