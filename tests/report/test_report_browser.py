"""The report in a real browser: Debian's Chromium, headless, driven by Playwright (never a
browser Playwright downloads). Skipped where Chromium is not installed; `.ci/run` installs it."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the flags keep a headless Chromium off the network entirely (it would otherwise try to reach
# Google's hosts at start) and working as root in a container
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright comes with the test extra")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def test_every_image_of_the_report_loads_and_the_page_renders(browser, finished_run, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((finished_run / "report.html").as_uri())
    page.wait_for_load_state("load")

    images = page.evaluate(
        "Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, "
        "shown: i.getBoundingClientRect().width, alt: i.alt}))"
    )
    assert len(images) == 14
    broken = [i["alt"] for i in images if not i["ok"]]
    assert not broken, f"images that did not load: {broken}"
    assert all(i["shown"] >= i["w"] for i in images if i["alt"].startswith("step"))  # small grids shown enlarged
    assert page.title().startswith("stagegen run:")
    headings = page.locator("h2").all_inner_texts()
    assert headings[:2] == ["Training curves", "Samples over training"]
    assert headings[-2:] == ["Interpolations", "Samples per label"]
    assert page.evaluate("document.body.scrollHeight") > 2000  # laid out, not an empty or collapsed page
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert not errors, errors
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 20_000
    page.close()


def test_the_check_sees_a_broken_image(browser, finished_run, tmp_path):
    """The check above can fail: an image whose data is cut short is reported as not loaded."""
    text = (finished_run / "report.html").read_text()
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + "iVBORw0KGgo" + text[text.index('"', start) :])
    page = browser.new_page()
    page.goto(broken.as_uri())
    page.wait_for_load_state("load")
    loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert loaded.count(False) == 1 and len(loaded) == 14
    page.close()
