"""report.html: valid HTML, self-contained, sortable, per-image view (docs/results.md, "report.html")."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from asyrp_bench.report import write_report
from tests._runs import make_run

GOLDEN = Path(__file__).parent / "golden" / "ci_tiny"


@pytest.fixture(scope="module")
def golden_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    target = tmp_path_factory.mktemp("golden") / "ci_tiny"
    shutil.copytree(GOLDEN, target)
    return write_report(target)[1].read_text()


def test_ci_tiny_report_is_valid_html(golden_html: str) -> None:
    import html5lib

    parser = html5lib.HTMLParser(strict=True)
    parser.parse(golden_html)
    assert not parser.errors


def test_ci_tiny_report_is_self_contained(golden_html: str) -> None:
    assert not re.search(r"(https?:)?//[a-z0-9]", golden_html, re.IGNORECASE)
    for src in re.findall(r"src='([^']+)'", golden_html):
        assert not re.match(r"[a-z]+:", src) and not src.startswith("/"), src
    assert "<script src" not in golden_html and "<link" not in golden_html


def test_headers_carry_direction_units_and_config(golden_html: str) -> None:
    assert "FID ↓</th>" in golden_html and "S_dir ↑</th>" in golden_html
    assert re.search(r"title='fid.fid: lower is better; unit: [^']*config d6c525cb6863", golden_html)


BROWSER_SCRIPT = "sortable"


@pytest.mark.browser
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    """Loads report.html in Chromium: no console errors, sorting reorders rows, the per-image view shows the
    images of the chosen cell in metric order."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install .[dev])")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver; see .ci/run)")
    run = make_run(tmp_path, images=4, n_images=4).path
    page = write_report(run)[1]
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        browser.get(page.as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        rows = lambda: [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#summary tbody tr")]  # noqa: E731
        before = rows()
        heads = browser.find_elements(By.CSS_SELECTOR, "#summary th")
        id_head = next(h for h in heads if h.text.startswith("ID"))
        id_head.click()
        after = rows()
        assert sorted(after) == sorted(before) and after != before
        id_head.click()
        assert rows() == after[::-1] or rows() != after
        Select(browser.find_element(By.ID, "pick-group")).select_by_visible_text("tiny / smiling")
        Select(browser.find_element(By.ID, "pick-editor")).select_by_value("adagn__smiling__s0")
        Select(browser.find_element(By.ID, "pick-metric")).select_by_value("identity")
        Select(browser.find_element(By.ID, "pick-order")).select_by_value("best")
        shown = browser.find_elements(By.CSS_SELECTOR, "#images tr[data-image]")
        import pandas as pd

        scores = pd.read_csv(run / "scores.csv", dtype={"image_id": str})
        mine = scores[(scores["cell"] == "adagn__smiling__s0") & (scores["metric"] == "identity")]
        expected = list(mine.sort_values("value", ascending=False)["image_id"])
        assert [r.get_attribute("data-image") for r in shown] == expected
        srcs = [i.get_attribute("src") for i in shown[0].find_elements(By.TAG_NAME, "img")]
        first = expected[0]
        assert srcs[0].endswith(f"cells/reconstruction/sources/{first}.png")
        assert srcs[2].endswith(f"cells/adagn__smiling__s0/images/{first}.png")
        assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 0
                   for i in shown[0].find_elements(By.TAG_NAME, "img"))
    finally:
        browser.quit()
