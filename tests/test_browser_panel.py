"""The panel in headless Chromium against the real app on real Mosquitto and InfluxDB.

Screenshots go to tests/screenshots/ (gitignored).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from rivermon.core.alerts import AlertStore, alert_line, publish_alert
from rivermon.core.config import load_config
from rivermon.core.mqtt import make_client, parse_broker_url

from test_web_api import write_readings

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "river-clean-42"

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("Debian chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (NoSuchElementException,  # noqa: E402
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


class Panel:
    """The real app on a threaded WSGI server in this process."""

    def __init__(self, app):
        from rivermon.web.server import make_panel_server

        self.app = app
        self.server = make_panel_server(app, "127.0.0.1", 0)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.app.extensions["rivermon"].hub.stop()
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["rivermon"].close()


@pytest.fixture
def panel(tmp_path, broker_url, influx, prefix, topology):
    from rivermon.web.app import create_app

    write_readings(influx, topology, minutes=90)
    cfg = load_config(env={}, overrides={
        "broker": broker_url, "influx": influx.url, "influx_db": influx.database,
        "topic_prefix": prefix, "var": str(tmp_path / "var"), "secret_key": "browser-test",
        "web_refresh_s": 0.5})
    app = create_app(cfg, topology, influx=influx, live=True, mqtt=True)
    users = app.extensions["rivermon"].users
    users.add("li", "cleaner", PASSWORD)
    users.add("wang", "operator", PASSWORD)
    p = Panel(app)
    yield p
    p.close()


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome'}",
                "--window-size=1280,1000", "--lang=zh-CN"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    yield driver
    # Script errors and CSP violations show up here; none is acceptable.
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
              and "favicon.ico" not in e["message"]]
    driver.quit()
    assert not errors, errors


def shot(driver, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait(driver, timeout: float = 10):
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))


def log_in(driver, panel: Panel, name: str = "li") -> None:
    driver.get(panel.url + "/login")
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver).until(EC.presence_of_element_located((By.ID, "creek-svg")))


def inject_discharge(panel: Panel, tmp_path: Path, segment: str = "hl-3", node: str = "hl3-s1"):
    """Open an alert the way the model does: AlertStore, then MQTT event and InfluxDB point."""
    cfg = panel.app.extensions["rivermon"].cfg
    store = AlertStore(Path(cfg.var) / "alerts.sqlite")
    alert, _ = store.open_or_update(
        "huanglong", segment, node, "discharge", "critical", time.time() - 120,
        {"zh": "疑似排污：肉菜市场对出河段溶解氧骤降、浊度突升，疑为大排口 ol-l3",
         "en": "Suspected discharge: DO sag and turbidity jump in the market reach, likely outlet ol-l3"},
        {"outlets": ["ol-l3"], "do_drop_mg_l": 3.1})
    store.close()
    b = parse_broker_url(cfg.broker)
    client = make_client(cfg.broker, "model-standin")
    client.connect(b.host, b.port)
    client.loop_start()
    publish_alert(client, cfg.topic_prefix, alert).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    panel.app.extensions["rivermon"].influx.write_lines([alert_line(alert)])
    return alert


def test_cleaner_sees_discharge_live_and_handles_it(panel, browser, topology, tmp_path):
    log_in(browser, panel)
    segs = topology.creeks[0].segments
    for s in segs:
        line = browser.find_element(By.ID, f"seg-line-{s.id}")
        assert "seg-unknown" not in line.get_attribute("class")
        assert browser.find_element(By.ID, f"card-{s.id}").is_displayed()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#live-dot.on")))
    shot(browser, "01-creek-ok")
    assert not browser.find_element(By.ID, "attention").is_displayed()
    aerator = browser.find_element(By.CSS_SELECTOR, '.node-aerator[data-node="hl3-a2"]')
    assert "aer-on" in aerator.get_attribute("class"), aerator.get_attribute("class")
    assert not browser.find_elements(By.CSS_SELECTOR, "circle.node-sensor.node-off")

    # The stream drops (a restart, a network change): the page says so and reconnects by itself.
    assert panel.app.extensions["rivermon"].hub.drop_clients() >= 1
    wait(browser).until(EC.visibility_of_element_located((By.ID, "conn")))
    wait(browser).until(EC.invisibility_of_element_located((By.ID, "conn")))
    wait(browser).until(lambda d: panel.app.extensions["rivermon"].hub.client_count >= 1)

    alert = inject_discharge(panel, tmp_path)
    # No reload: the live stream recolours the segment and pops the alert.
    wait(browser).until(lambda d: "seg-critical" in d.find_element(By.ID, "seg-line-hl-3").get_attribute("class"))
    card = browser.find_element(By.ID, "card-hl-3")
    assert "status-critical" in card.get_attribute("class")
    assert "严重" in card.text
    toast = wait(browser).until(EC.visibility_of_element_located((By.ID, "toast")))
    assert "hl-3" in toast.text
    attention = wait(browser).until(EC.visibility_of_element_located((By.ID, "attention")))
    assert "肉菜市场对出河段" in attention.text and "严重" in attention.text
    shot(browser, "02-creek-discharge")

    browser.find_element(By.CSS_SELECTOR, '.nav a[href="/inbox"]').click()
    item = wait(browser).until(EC.presence_of_element_located((By.ID, f"alert-{alert.id}")))
    assert "疑似排污" in item.text and "水体事件" in item.text
    shot(browser, "03-inbox-open")
    item.find_element(By.ID, f"note-{alert.id}").send_keys("已到现场")
    # Another alert arrives while the note is half written: the list updates, the note stays.
    other = inject_discharge(panel, tmp_path, "hl-6", "hl6-s1")
    wait(browser).until(EC.presence_of_element_located((By.ID, f"alert-{other.id}")))
    assert browser.find_element(By.ID, f"note-{alert.id}").get_attribute("value") == "已到现场"
    item = browser.find_element(By.ID, f"alert-{alert.id}")
    item.find_element(By.CSS_SELECTOR, '[data-action="acknowledge"]').click()
    wait(browser).until(lambda d: d.find_element(By.ID, f"alert-{alert.id}").get_attribute("data-state")
                        == "acknowledged")
    time.sleep(0.5)  # let the live echo of our own action arrive (it must not re-render anything)
    item = browser.find_element(By.ID, f"alert-{alert.id}")
    assert "确认人" in item.text and "li" in item.text and "已到现场" in item.text
    shot(browser, "04-inbox-acknowledged")
    item.find_element(By.CSS_SELECTOR, '[data-action="resolve"]').click()
    wait(browser).until(EC.invisibility_of_element_located((By.ID, f"alert-{alert.id}")))
    browser.find_element(By.ID, f"alert-{other.id}").find_element(
        By.CSS_SELECTOR, '[data-action="resolve"]').click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "no-alerts")))
    store = AlertStore(Path(panel.app.extensions["rivermon"].cfg.var) / "alerts.sqlite")
    done = store.get(alert.id)
    store.close()
    assert (done.state, done.acknowledged_by, done.resolved_by) == ("resolved", "li", "li")

    browser.find_element(By.CSS_SELECTOR, '.nav a[href="/"]').click()
    wait(browser).until(lambda d: "seg-ok" in d.find_element(By.ID, "seg-line-hl-3").get_attribute("class"))


def test_language_switch(panel, browser):
    log_in(browser, panel)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert "华龙路西段" in browser.page_source
    browser.find_element(By.ID, "lang-switch").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    assert "Hualong Rd west" in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, '.nav a[href="/inbox"]').text.startswith("Alerts")
    shot(browser, "05-creek-english")
    browser.get(panel.url + "/segment/hl-3")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#chart-do canvas")))
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes-table tbody tr")) == 2)
    assert "Dissolved oxygen" in browser.page_source
    time.sleep(0.5)
    shot(browser, "06-segment-english")
    browser.get(panel.url + "/trends")
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#comp-a tbody tr")) == 9)
    time.sleep(0.5)
    shot(browser, "07-trends-english")
    browser.find_element(By.ID, "lang-switch").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN")


def test_phone_viewport(panel, browser, tmp_path):
    browser.set_window_size(390, 844)
    # The layout viewport must be 390 CSS px wide, whatever the window chrome takes.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    log_in(browser, panel, "wang")
    inject_discharge(panel, tmp_path)
    inject_discharge(panel, tmp_path, "hl-6", "hl6-s1")
    pages = ["/", "/inbox", "/segment/hl-3", "/trends", "/fleet", "/report"]
    for path in pages:
        browser.get(panel.url + path)
        time.sleep(0.6)
        width = browser.execute_script("return document.documentElement.clientWidth")
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert width == 390 and scroll <= width, (path, scroll)
        shot(browser, "phone" + path.replace("/", "-").rstrip("-"))
    browser.get(panel.url + "/inbox")
    buttons = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".alert-actions .btn"))
    assert len(buttons) >= 3
    for b in buttons:
        assert b.size["height"] >= 44, (b.text, b.size)
    for b in browser.find_elements(By.CSS_SELECTOR, ".nav a, .btn-ghost"):
        assert b.size["height"] >= 44, (b.text, b.size)
    shot(browser, "phone-inbox-alerts")
    browser.get(panel.url + "/segment/hl-3")
    buttons = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".aer-actions .btn, .aer-actions select"))
    assert len(buttons) == 8
    for b in buttons:
        assert b.size["height"] >= 44, (b.text, b.size)
    browser.execute_script("document.getElementById('aerators-panel').scrollIntoView()")
    shot(browser, "phone-segment-aerators")


def test_operator_switches_an_aerator_to_manual_on_and_back(panel, browser):
    log_in(browser, panel, "wang")
    browser.get(panel.url + "/segment/hl-3")
    card = '.aer-card[data-node="hl3-a1"]'
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, card)))
    assert browser.find_element(By.CSS_SELECTOR, card).get_attribute("data-mode") == "auto"
    select = browser.find_element(By.CSS_SELECTOR, card + ' [data-role="minutes"]')
    select.find_element(By.CSS_SELECTOR, 'option[value="30"]').click()
    for b in browser.find_elements(By.CSS_SELECTOR, card + " .aer-actions .btn"):
        assert b.size["height"] >= 44, (b.text, b.size)
    browser.find_element(By.CSS_SELECTOR, card + ' button[data-order="on"]').click()
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, card).get_attribute("data-mode") == "manual_on")
    mode = browser.find_element(By.CSS_SELECTOR, card + ' [data-role="mode"]').text
    assert "手动开" in mode and "wang" in mode
    # the panel sent it itself (no controller here), logged it, and shows who gave the order
    wait(browser).until(lambda d: "wang" in d.find_element(By.ID, "orders").text)
    wait(browser).until(lambda d: "hl3-a1" in d.find_element(By.ID, "commands").text)
    assert Select(browser.find_element(By.CSS_SELECTOR, card + ' [data-role="minutes"]')).first_selected_option.get_attribute("value") == "30"
    shot(browser, "08-aerator-manual-on")
    browser.find_element(By.CSS_SELECTOR, card + ' button[data-order="auto"]').click()
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, card).get_attribute("data-mode") == "auto")
