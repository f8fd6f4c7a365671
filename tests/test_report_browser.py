"""The report in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
through Selenium. Skipped with a message when no browser is installed, unless
``DLNCHECK_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns the skip into a failure."""

import os
import shutil

import pytest
from synthetic_report import HOSTILE, build

REQUIRED = os.environ.get("DLNCHECK_REQUIRE_BROWSER") == "1"


def _driver_or_skip(width: int):
    why = None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        why = "selenium is not installed (pip install selenium, in the test extra)"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if why is None and not (browser and driver):
        why = "no chromium/chromedriver (apt-get install -y chromium chromium-driver)"
    if why:
        (pytest.fail if REQUIRED else pytest.skip)(f"browser test not run: {why}")
    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},900",
        "--allow-file-access-from-files",
    ):
        options.add_argument(arg)
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return root, build(root)


@pytest.fixture(scope="module")
def browser():
    driver = _driver_or_skip(1200)
    yield driver
    driver.quit()


def severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def all_resources_resolve(driver):
    """Every image decoded (after scrolling it into view: lazy) and every local link exists."""
    return driver.execute_script("""
        const bad = [];
        for (const img of document.images) {
            img.loading = "eager";
            img.scrollIntoView();
        }
        return new Promise(done => setTimeout(() => {
            for (const img of document.images)
                if (!img.complete || img.naturalWidth === 0) bad.push(img.src);
            const checks = [...document.querySelectorAll("a[href]")]
                .map(a => a.href.split("#")[0]).filter(h => h.startsWith("file:"))
                .map(h => fetch(h).then(r => r.ok ? null : h, () => h));
            Promise.all(checks).then(r => done(bad.concat(r.filter(Boolean))));
        }, 500));
    """)


def visible_rows(driver):
    return driver.execute_script(
        "return [...document.querySelectorAll('table.cases tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.dataset.outcome)"
    )


def test_filters_hide_and_show_rows(report, browser):
    from selenium.webdriver.support.ui import Select

    root, records = report
    browser.get((root / "index.html").as_uri())
    assert len(visible_rows(browser)) == len(records)
    Select(browser.find_element("name", "outcome")).select_by_visible_text("xfailed")
    assert visible_rows(browser) == ["xfailed"] * 3
    Select(browser.find_element("name", "outcome")).select_by_visible_text("all")
    Select(browser.find_element("name", "exploratory")).select_by_visible_text("yes")
    assert visible_rows(browser) == ["passed"]
    Select(browser.find_element("name", "exploratory")).select_by_visible_text("all")
    assert len(visible_rows(browser)) == len(records)
    assert not severe(browser)


def test_sort_expand_and_anchor_scrolls_to_its_case(report, browser):
    root, records = report
    browser.get((root / "index.html").as_uri())
    browser.find_element("css selector", "table.cases th:nth-child(2)").click()
    cases = browser.execute_script(
        "return [...document.querySelectorAll('table.cases tbody tr')].map(r => r.cells[1].dataset.key)"
    )
    assert cases == sorted(cases, key=str)
    browser.find_element("id", "expand-all").click()
    assert browser.execute_script("return [...document.querySelectorAll('details')].every(d => d.open)")
    target = records[-2]
    browser.get((root / "index.html").as_uri() + f"#case-{target['folder']}")
    top = browser.execute_script(
        f"return document.getElementById('case-{target['folder']}').getBoundingClientRect().top"
    )
    header = browser.execute_script("return document.querySelector('header.menu').offsetHeight")
    assert header - 2 <= top <= header + 80  # just below the sticky menu
    assert browser.execute_script("return window.scrollY") > 0


def test_every_image_and_link_resolves_without_console_errors(report, browser):
    root, records = report
    for page in [root / "index.html"] + [root / "claims" / r["folder"] / "index.html" for r in records[:3]]:
        browser.get(page.as_uri())
        assert all_resources_resolve(browser) == [], page
        assert not severe(browser), page


def test_case_page_shows_prediction_numbers_and_files(report, browser):
    root, records = report
    rec = records[1]
    browser.get((root / "claims" / rec["folder"] / "index.html").as_uri())
    text = browser.find_element("tag name", "main").text
    assert "x stays at 0.5" in text and "theory says so" in text and "SGD's s_2 escapes later" in text
    assert "verdict.json" in text and "level.csv" in text and "nan" not in text.lower().split()
    assert browser.find_element("css selector", "figure figcaption").text.startswith("level of")
    shown, natural, room = browser.execute_script(
        "const i = document.querySelector('figure img');"
        "return [i.getBoundingClientRect().width, i.naturalWidth, i.parentElement.parentElement.clientWidth]"
    )
    assert shown >= min(natural, room) - 2 and natural > 500  # full size, or the full width


def test_hostile_id_renders_as_text(report, browser):
    root, _ = report
    browser.get((root / "index.html").as_uri())
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert browser.title == "dlncheck report"
    assert '<img src=x onerror="document.title=1">' in browser.find_element("id", "cases").text
    assert HOSTILE[:10] in browser.page_source.replace("&lt;", "<").replace("&gt;", ">")


@pytest.mark.parametrize("page", ["index", "case"])
def test_no_horizontal_scroll_at_800_px(report, page):
    root, records = report
    path = root / "index.html" if page == "index" else root / "claims" / records[1]["folder"] / "index.html"
    driver = _driver_or_skip(800)
    try:
        driver.get(path.as_uri())
        width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    finally:
        driver.quit()
    assert width[0] <= width[1], width
