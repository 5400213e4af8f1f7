"""The dashboard on admin_gui_listen (issue #16), in a real headless browser: Debian's chromium and
chromium-driver driven by Selenium. The page loads without console errors, a service created through
the form is in GET /services, a 400's field error is shown under its input, a stopped target's badge
turns UNHEALTHY (active checks), every deep link renders its view, admin_token is asked for. Each main
view is saved as a PNG under Tests/integration/artifacts/dashboard/ (gitignored; GW_ARTIFACTS moves it).
Without a browser the listener itself is checked with plain HTTP (paths, /api/ forwarding, origin check)."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import TIMEOUT, free_port, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
ARTIFACTS = os.environ.get("GW_ARTIFACTS") or os.path.join(os.path.dirname(__file__), "artifacts", "dashboard")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def gui_gateway(gateway, **extra):
    port = free_port()
    g = gateway(admin_gui_listen=f"127.0.0.1:{port}", **extra)
    g.gui_port = port
    g.gui = f"http://127.0.0.1:{port}"
    return g


def http(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = dict(headers or {})
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


# ---- the listener without a browser ---------------------------------------------------------------

def test_embedded_files_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools/dashboard/embed.py"), "--check"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr


def test_listener_serves_page_assets_and_forwards_api(gateway):
    g = gui_gateway(gateway)
    for path in ["/", "/services", "/services/some-name", "/routes", "/upstreams", "/upstreams/u1", "/consumers",
                 "/consumers/alice", "/plugins", "/services/", "/upstreams/u1/"]:
        st, body, h = http(g.gui + path)
        assert st == 200 and h["Content-Type"].startswith("text/html"), path
        assert b"/assets/core.js" in body and "frame-ancestors 'none'" in h["Content-Security-Policy"]
    for path in ["/nope", "/services/a/b", "/index.html/x"]:
        assert http(g.gui + path)[0] == 404, path
    st, body, h = http(g.gui + "/assets/app.css")
    assert st == 200 and h["Content-Type"].startswith("text/css") and b".sidebar" in body
    assert http(g.gui + "/assets/app.css", headers={"If-None-Match": h["ETag"]})[0] == 304
    assert http(g.gui + "/", method="POST", body={})[0] == 405
    # /api/... is the Admin API: the same answers as admin_listen.
    st, body, _ = http(g.gui + "/api/services", method="POST", body={"name": "s1", "host": "example.com"},
                       headers={"Origin": g.gui, "Host": f"127.0.0.1:{g.gui_port}"})
    assert st == 201
    assert g.admin("GET", "/services/s1")[0] == 200
    st, body, _ = http(g.gui + "/api/services", method="POST", body={"name": "s2", "host": "example.com", "port": 70000})
    assert st == 400 and json.loads(body)["fields"] == {"port": "value should be between 0 and 65535"}
    st, body, _ = http(g.gui + "/api")
    assert st == 200 and "version" in json.loads(body)
    assert json.loads(http(g.gui + "/api/services?size=1")[1])["data"][0]["name"] == "s1"
    # A write from another origin (a cross-site form or script) is refused; reads stay plain.
    st, body, _ = http(g.gui + "/api/services", method="POST", body={"name": "evil", "host": "example.com"},
                       headers={"Origin": "http://evil.example"})
    assert st == 403 and g.admin("GET", "/services/evil")[0] == 404


def test_listener_off_and_bad_values(gateway, tmp_path):
    g = gateway(admin_gui_listen="off")
    assert g.admin("GET", "/")[1]["configuration"]["admin_gui_listen"] == "off"
    for bad, why in [("127.0.0.1:8445 ssl", "ssl"), ("nowhere", "host:port"), ("127.0.0.1:80 http2", "http2")]:
        g2 = gateway(start=False, admin_gui_listen=bad)
        r = g2.cli("start", "-c", g2.conf, "-p", g2.prefix)
        assert r.returncode != 0 and "admin_gui_listen" in (r.stdout + r.stderr), bad


def test_admin_gui_listen_is_rebound_on_reload(gateway):
    g = gui_gateway(gateway)
    assert http(g.gui + "/")[0] == 200
    new = free_port()
    g.write_conf(admin_gui_listen=f"127.0.0.1:{new}")
    g.cli("reload", "-c", g.conf, "-p", g.prefix, check=True)
    wait_until(lambda: http(f"http://127.0.0.1:{new}/")[0] == 200, what="dashboard on the new port")
    with pytest.raises(OSError):
        urllib.request.urlopen(g.gui + "/", timeout=2)


# ---- in the browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,950",
              "--disable-extensions", "--no-first-run", "--disable-background-networking"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(TIMEOUT * 3)
    d.set_script_timeout(TIMEOUT)
    os.makedirs(ARTIFACTS, exist_ok=True)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    yield d
    d.quit()


def waiter(d, timeout=None):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(d, timeout or TIMEOUT * 2, poll_frequency=0.1)


def css(d, sel):
    from selenium.webdriver.common.by import By
    return d.find_elements(By.CSS_SELECTOR, sel)


def wait_css(d, sel, text=None, timeout=None):
    """Waits until an element matching sel (containing text, when given) is displayed."""
    def ok(_):
        for e in css(d, sel):
            try:
                if e.is_displayed() and (text is None or text in e.text):
                    return e
            except Exception:  # noqa: BLE001 - stale while the view re-renders
                continue
        return False
    return waiter(d, timeout).until(ok, f"{sel} {text or ''}")


def shot(d, name):
    path = os.path.join(ARTIFACTS, name)
    d.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)   # let the last poll paint
    d.save_screenshot(path)
    print(f"screenshot: {path}")


def drop_console(d):
    d.get("about:blank")   # stop the previous page's polling (its gateway is gone)
    d.get_log("browser")   # entries are returned once: forget what earlier tests left


def console_errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def fill(d, name, value):
    el = wait_css(d, f"#f-{name}")
    el.clear()
    el.send_keys(value)


def seed(g, up1, up2):
    assert g.admin("POST", "/upstreams", {"name": "billing-up", "healthchecks": {"active": {
        "http_path": "/", "healthy": {"interval": 1, "successes": 1},
        "unhealthy": {"interval": 1, "tcp_failures": 1, "http_failures": 1, "timeouts": 1}}}})[0] == 201
    for u in (up1, up2):
        assert g.admin("POST", "/upstreams/billing-up/targets", {"target": u.address})[0] == 201
    assert g.admin("POST", "/services", {"name": "billing", "host": "billing-up", "tags": ["team-a"]})[0] == 201
    assert g.admin("POST", "/services", {"name": "search", "url": "http://127.0.0.1:9/search"})[0] == 201
    assert g.admin("POST", "/services/billing/routes", {"name": "billing-route", "paths": ["/billing"]})[0] == 201
    assert g.admin("POST", "/services/search/routes", {"name": "search-route", "paths": ["/search"], "methods": ["GET"]})[0] == 201
    assert g.admin("POST", "/consumers", {"username": "alice", "custom_id": "a-1"})[0] == 201
    assert g.admin("POST", "/consumers/alice/key-auth", {"key": "alice-key"})[0] == 201
    assert g.admin("POST", "/consumers/alice/acls", {"group": "billing-users"})[0] == 201
    assert g.admin("POST", "/services/billing/plugins", {"name": "key-auth"})[0] == 201
    assert g.admin("POST", "/plugins", {"name": "correlation-id"})[0] == 201


def test_overview_loads_without_console_errors(gateway, browser):
    g = gui_gateway(gateway)
    drop_console(browser)
    browser.get(g.gui + "/")
    wait_css(browser, "#stat-generation .num")
    wait_css(browser, "#workers tbody tr")
    assert len(css(browser, "#workers tbody tr")) == 2
    wait_css(browser, "#entity-counts .stat-box")
    time.sleep(2.5)   # one more status poll
    assert console_errors(browser) == []
    assert "active" in css(browser, 'a[data-nav="overview"]')[0].get_attribute("class")
    shot(browser, "overview.png")


def test_service_created_through_the_form_is_in_the_admin_api(gateway, browser):
    g = gui_gateway(gateway)
    drop_console(browser)
    browser.get(g.gui + "/services")
    wait_css(browser, "#new-service").click()
    fill(browser, "name", "orders")
    fill(browser, "host", "orders.internal")
    fill(browser, "path", "/v1")
    fill(browser, "tags", "team-b, beta")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "main table.grid a", "orders")
    assert not css(browser, "#modal")
    st, body, _ = g.admin("GET", "/services/orders")
    assert st == 200 and body["host"] == "orders.internal" and body["path"] == "/v1" and body["tags"] == ["team-b", "beta"]
    assert console_errors(browser) == []
    shot(browser, "services.png")


def test_validation_error_is_shown_next_to_its_field(gateway, browser):
    g = gui_gateway(gateway)
    browser.get(g.gui + "/services")
    wait_css(browser, "#new-service").click()
    fill(browser, "name", "bad-port")
    fill(browser, "host", "example.com")
    fill(browser, "port", "70000")
    wait_css(browser, "#form-submit").click()
    err = wait_css(browser, '.field[data-field="port"] .field-error', "value should be between 0 and 65535")
    assert "invalid" in err.find_element("xpath", "..").get_attribute("class")
    assert wait_css(browser, ".form-banner", "schema violation")
    assert not [e for e in css(browser, ".field-error") if e.text and e.get_attribute("id") != "error-port"]
    assert g.admin("GET", "/services/bad-port")[0] == 404
    shot(browser, "service-form-error.png")
    # Fixing the field clears the error and creates the service.
    fill(browser, "port", "8080")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "main table.grid a", "bad-port")
    assert g.admin("GET", "/services/bad-port")[1]["port"] == 8080


def test_plugin_config_error_is_shown_under_config(gateway, browser):
    g = gui_gateway(gateway)
    browser.get(g.gui + "/plugins")
    wait_css(browser, "#new-plugin").click()
    from selenium.webdriver.support.ui import Select
    Select(wait_css(browser, "#f-name")).select_by_value("rate-limiting")
    wait_css(browser, "#config-fields", "minute")   # the schema's config fields, listed under the JSON input
    assert "one of consumer | credential" in css(browser, "#config-fields")[0].text
    fill(browser, "config", '{"minute": -1}')
    wait_css(browser, "#form-submit").click()
    err = wait_css(browser, "#error-config", "minute")
    assert "greater than" in err.text or "between" in err.text or "minute" in err.text
    shot(browser, "plugin-form-error.png")
    fill(browser, "config", "{not json")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "#error-config", "invalid JSON")
    assert g.admin("GET", "/plugins")[1]["data"] == []


def test_stopped_target_turns_unhealthy(gateway, browser, upstream):
    g = gui_gateway(gateway)
    up1, up2 = upstream("one"), upstream("two")
    seed(g, up1, up2)
    browser.get(g.gui + "/upstreams/billing-up")
    for u in (up1, up2):
        wait_css(browser, f'tr[data-target="{u.address}"] td.health .badge[data-health="HEALTHY"]')
    shot(browser, "upstream-detail.png")
    up2.stop()
    # Active checks every second, one TCP failure → unhealthy; the page polls every second.
    badge = wait_css(browser, f'tr[data-target="{up2.address}"] td.health .badge[data-health="UNHEALTHY"]', timeout=TIMEOUT * 3)
    assert badge.text == "UNHEALTHY" and "unhealthy" in badge.get_attribute("class")
    assert css(browser, f'tr[data-target="{up1.address}"] td.health .badge')[0].get_attribute("data-health") == "HEALTHY"
    shot(browser, "upstream-target-unhealthy.png")
    # The page agrees with the Admin API.
    rows = {r["target"]: r["health"] for r in g.admin("GET", "/upstreams/billing-up/health")[1]["data"]}
    assert rows == {up1.address: "HEALTHY", up2.address: "UNHEALTHY"}
    # Back up → HEALTHY again, still without a reload of the page.
    up2.start()
    wait_css(browser, f'tr[data-target="{up2.address}"] td.health .badge[data-health="HEALTHY"]', timeout=TIMEOUT * 3)


DEEP_LINKS = [
    ("/", "overview", "#stat-generation", None, "overview.png"),
    ("/services", "services", "main table.grid a", "billing", "services.png"),
    ("/services/billing", "services-detail", "main h1", "billing", "service-detail.png"),
    ("/routes", "routes", "main table.grid td", "search-route", "routes.png"),
    ("/upstreams", "upstreams", '[data-upstream-health="billing-up"] .badge[data-health="HEALTHY"]', None, "upstreams.png"),
    ("/upstreams/billing-up", "upstreams-detail", 'tr[data-target] .badge[data-health="HEALTHY"]', None, "upstream-detail.png"),
    ("/consumers", "consumers", "main table.grid a", "alice", "consumers.png"),
    ("/consumers/alice", "consumers-detail", '[data-credentials="key-auth"] code', "alice-key", "consumer-detail.png"),
    ("/plugins", "plugins", "main table.grid strong", "correlation-id", "plugins.png"),
]


def test_deep_links_load_their_view(gateway, browser, upstream):
    g = gui_gateway(gateway)
    drop_console(browser)
    seed(g, upstream("one"), upstream("two"))
    for path, view, sel, text, png in DEEP_LINKS:
        browser.get(g.gui + path)
        wait_css(browser, sel, text)
        assert browser.find_element("css selector", "main").get_attribute("data-view") == view, path
        nav = view.split("-")[0]
        assert "active" in css(browser, f'a[data-nav="{nav}"]')[0].get_attribute("class"), path
        shot(browser, png)
    # The list filter hides rows that do not match.
    browser.get(g.gui + "/services")
    wait_css(browser, "main table.grid a", "billing")
    wait_css(browser, "#filter").send_keys("sear")
    waiter(browser).until(lambda d: [e.text for e in css(d, "main table.grid tbody tr") if e.is_displayed()][0].startswith("search")
                          and len([e for e in css(d, "main table.grid tbody tr") if e.is_displayed()]) == 1)
    # By id as well as by name; the service view has its routes, plugins and the traffic card.
    sid = g.admin("GET", "/services/billing")[1]["id"]
    browser.get(g.gui + "/services/" + sid)
    wait_css(browser, "main h1", "billing")
    wait_css(browser, "main table.grid td", "billing-route")
    wait_css(browser, "main table.grid strong", "key-auth")
    wait_css(browser, "#traffic-chart")
    # Links inside the page navigate without a reload and the back button works.
    browser.execute_script("window.__marker = 1")
    css(browser, 'a[data-nav="routes"]')[0].click()
    wait_css(browser, "main table.grid td", "search-route")
    browser.back()
    wait_css(browser, "main h1", "billing")
    assert browser.execute_script("return window.__marker") == 1
    assert console_errors(browser) == []


def test_chart_asks_for_the_prometheus_plugin(gateway, browser):
    g = gui_gateway(gateway)
    drop_console(browser)
    assert g.admin("POST", "/services", {"name": "quiet", "host": "example.com"})[0] == 201
    info = g.admin("GET", "/")[1]
    browser.get(g.gui + "/services/quiet")
    card = wait_css(browser, "#traffic-chart .chart-note", "nable the prometheus plugin")
    available = "prometheus" in info["plugins"]["available_on_server"]
    state = css(browser, "#traffic-chart")[0].get_attribute("data-state")
    assert state == ("not-enabled" if available else "no-metrics")
    assert card.is_displayed() and not css(browser, "#traffic-chart .plots")[0].is_displayed()
    assert console_errors(browser) == []
    shot(browser, "service-chart-no-prometheus.png")


def test_chart_plots_traffic_with_prometheus(gateway, browser, upstream):
    g = gui_gateway(gateway)
    if "prometheus" not in g.admin("GET", "/")[1]["plugins"]["available_on_server"]:
        pytest.skip("this build has no prometheus plugin (GET /metrics)")
    u = upstream("m")
    assert g.admin("POST", "/services", {"name": "metered", "url": f"http://{u.address}"})[0] == 201
    assert g.admin("POST", "/services/metered/routes", {"paths": ["/m"]})[0] == 201
    assert g.admin("POST", "/services/metered/plugins", {"name": "prometheus", "config": {
        "status_code_metrics": True, "latency_metrics": True}})[0] == 201
    g.wait_route("/m")
    browser.get(g.gui + "/services/metered")
    wait_css(browser, '#traffic-chart[data-state="live"]')
    deadline = time.monotonic() + TIMEOUT * 2
    while time.monotonic() < deadline:
        for _ in range(20):
            g.get("/m")
        rps = css(browser, "#chart-rps")
        if rps and float(rps[0].get_attribute("data-value")) > 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the chart never showed requests/s > 0")
    shot(browser, "service-chart.png")


def test_admin_token_is_asked_for_and_sent(gateway, browser):
    g = gui_gateway(gateway, admin_token="s3cret")
    browser.get(g.gui + "/services")
    browser.execute_script("sessionStorage.clear()")
    browser.get(g.gui + "/services")
    field = wait_css(browser, "#admin-token")
    shot(browser, "admin-token.png")
    field.send_keys("wrong")
    wait_css(browser, ".token-form button").click()
    wait_css(browser, ".token-form .error", "Invalid credentials")
    field = wait_css(browser, "#admin-token")
    field.send_keys("s3cret")
    wait_css(browser, ".token-form button").click()
    wait_css(browser, "#new-service").click()
    fill(browser, "name", "with-token")
    fill(browser, "host", "example.com")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "main table.grid a", "with-token")
    assert g.admin("GET", "/services/with-token", headers={"Kong-Admin-Token": "s3cret"})[0] == 200
    assert http(g.gui + "/api/services")[0] == 401
    browser.execute_script("sessionStorage.clear()")


# The chart's arithmetic, in the page: Kong's exposition format → rates by status class and
# histogram_quantile-style percentiles; then the live chart fed a synthetic /metrics (fetch is
# replaced in the page, so the drawing is checked without the prometheus plugin).
FAKE_METRICS_JS = r"""
window.fakeMetrics = function (n) {
  const les = [25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000];
  // per scrape: 100 requests of "quiet" (90 x 200, 6 x 404, 4 x 502), latencies: 50 <= 25 ms,
  // 30 in (25, 50], 15 in (50, 80], 5 in (250, 400]; another service's series must be ignored.
  const per = {25: 50, 50: 80, 80: 95, 100: 95, 250: 95};
  let t = '# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong\n' +
          '# TYPE kong_http_requests_total counter\n';
  t += `kong_http_requests_total{service="quiet",route="r1",code="200",source="service",workspace="default",consumer=""} ${90 * n}\n`;
  t += `kong_http_requests_total{service="quiet",route="r1",code="404",source="kong",workspace="default",consumer=""} ${6 * n}\n`;
  t += `kong_http_requests_total{service="quiet",route="r2",code="502",source="service",workspace="default",consumer=""} ${4 * n}\n`;
  t += `kong_http_requests_total{service="other \\"svc\\"",route="x",code="200",source="service",workspace="default",consumer=""} ${1000 * n}\n`;
  for (const le of les) t += `kong_request_latency_ms_bucket{service="quiet",route="r1",workspace="default",le="${le}"} ${(per[le] || 100) * n}\n`;
  t += `kong_request_latency_ms_bucket{service="quiet",route="r1",workspace="default",le="+Inf"} ${100 * n}\n`;
  t += `kong_request_latency_ms_count{service="quiet",route="r1",workspace="default"} ${100 * n}\n`;
  return t;
};
"""


def test_chart_arithmetic_in_the_page(gateway, browser):
    g = gui_gateway(gateway)
    browser.get(g.gui + "/")
    wait_css(browser, "#stat-generation")
    r = browser.execute_script(FAKE_METRICS_JS + """
      const a = GW.metrics.sample(GW.metrics.parse(fakeMetrics(1)), 'quiet');
      const b = GW.metrics.sample(GW.metrics.parse(fakeMetrics(2)), 'quiet');
      const o = GW.metrics.sample(GW.metrics.parse(fakeMetrics(2)), 'other "svc"');
      return {classes: b.classes, other: o.classes['2xx'], p50: GW.metrics.quantile(a, b, 0.5),
              p90: GW.metrics.quantile(a, b, 0.9), p99: GW.metrics.quantile(a, b, 0.99),
              none: GW.metrics.quantile(b, b, 0.5), found: b.found};""")
    assert r["classes"] == {"2xx": 180, "3xx": 0, "4xx": 12, "5xx": 8, "other": 0} and r["found"]
    assert r["other"] == 2000
    assert r["p50"] == 25                              # exactly the 50th of 100 requests: top of the first bucket
    assert abs(r["p90"] - (50 + 30 * (90 - 80) / 15)) < 1e-9   # inside (50, 80]
    assert abs(r["p99"] - (250 + 150 * (99 - 95) / 5)) < 1e-9  # inside (250, 400]
    assert r["none"] is None


def test_live_chart_draws_synthetic_metrics(gateway, browser):
    g = gui_gateway(gateway)
    assert g.admin("POST", "/services", {"name": "quiet", "host": "example.com"})[0] == 201
    browser.get(g.gui + "/services/quiet")
    wait_css(browser, "#traffic-chart")
    browser.execute_script(FAKE_METRICS_JS + """
      const real = window.fetch; let n = 0;
      window.fetch = (url, opts) => url === '/api/metrics'
        ? Promise.resolve(new Response(fakeMetrics(++n), {status: 200, headers: {'Content-Type': 'text/plain'}}))
        : real(url, opts);
      const info = {plugins: {available_on_server: {prometheus: {}}, enabled_in_cluster: ['prometheus']}};
      document.getElementById('traffic-chart').replaceWith(GW.serviceChart({name: 'quiet', id: 'x'}, info, GW.viewSeq));""")
    wait_css(browser, '#traffic-chart[data-state="live"]')
    rps = wait_css(browser, "#chart-rps", timeout=TIMEOUT * 2)
    wait_until(lambda: browser.execute_script("return document.querySelectorAll('#chart-legend .stat').length") == 8,
               what="legend " + repr(css(browser, "#chart-legend")[0].get_attribute("innerHTML")))
    assert float(rps.get_attribute("data-value")) > 0
    legend = css(browser, "#chart-legend")[0].text
    assert "p50 25 ms" in legend and "p99" in legend and "5xx" in legend
    time.sleep(4.5)   # two more scrapes: lines, not points
    shot(browser, "service-chart.png")


def test_route_edit_and_delete_through_the_forms(gateway, browser):
    from selenium.webdriver.support.ui import Select
    g = gui_gateway(gateway)
    assert g.admin("POST", "/services", {"name": "catalog", "host": "example.com"})[0] == 201
    browser.get(g.gui + "/services/catalog")
    wait_css(browser, "#new-route").click()
    assert Select(wait_css(browser, "#f-service")).first_selected_option.text == "catalog"
    fill(browser, "name", "catalog-route")
    fill(browser, "paths", "/catalog, /items")
    fill(browser, "methods", "GET, POST")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "main table.grid td", "catalog-route")
    st, r, _ = g.admin("GET", "/routes/catalog-route")
    sid = g.admin("GET", "/services/catalog")[1]["id"]
    assert st == 200 and r["paths"] == ["/catalog", "/items"] and r["methods"] == ["GET", "POST"]
    assert r["service"] == {"id": sid}
    # A bad path is Kong's 400 under the paths field; nothing changes.
    wait_css(browser, "main table.grid button", "Edit").click()
    fill(browser, "paths", "no-slash")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "#error-paths", "should start with")
    assert g.admin("GET", "/routes/catalog-route")[1]["paths"] == ["/catalog", "/items"]
    fill(browser, "paths", "/catalog/v2")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, "main table.grid td", "/catalog/v2")
    assert g.admin("GET", "/routes/catalog-route")[1]["paths"] == ["/catalog/v2"]
    # Edit the service itself (PATCH), then delete the route and the service.
    wait_css(browser, "#edit-service").click()
    fill(browser, "host", "catalog.internal")
    wait_css(browser, "#form-submit").click()
    wait_css(browser, ".page-head p", "catalog.internal")
    assert g.admin("GET", "/services/catalog")[1]["host"] == "catalog.internal"
    wait_css(browser, "main table.grid .danger-outline", "Delete").click()
    wait_css(browser, "#confirm-delete").click()
    wait_css(browser, "main .empty", "No routes")
    assert g.admin("GET", "/routes/catalog-route")[0] == 404
    wait_css(browser, ".page-head .danger-outline", "Delete").click()
    wait_css(browser, "#confirm-delete").click()
    wait_css(browser, "main .empty", "No gateway services")
    assert g.admin("GET", "/services/catalog")[0] == 404
    assert browser.current_url.endswith("/services")
