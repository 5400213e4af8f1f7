"""A plugin the workers do not run is refused in every mode (issue #12's first rule): Admin API writes,
DB-less POST /config, declarative_config at start and `gateway config db_import`."""
import json
import os

from conftest import TIMEOUT

# Kong plugins this build does not run (some have a schema and a handler the data path cannot fully
# serve yet, some nothing at all); shrinks as plugins land.
NOT_RUNNING = ["jwt", "statsd"]


def enabled(g):
    s, body, _ = g.admin("GET", "/plugins/enabled")
    assert s == 200
    return body["enabled_plugins"]


def test_admin_refuses_plugins_that_do_not_run(gateway):
    g = gateway(workers=1)
    assert g.admin("POST", "/services", {"name": "s", "url": "http://127.0.0.1:9"})[0] == 201
    assert g.admin("POST", "/services/s/routes", {"name": "r", "paths": ["/mock"]})[0] == 201
    for name in NOT_RUNNING:
        if name in enabled(g):
            continue
        s, body, _ = g.admin("POST", "/routes/r/plugins", form={"name": name, "config.minute": "1"})
        assert s == 400, (name, body)
        assert body["name"] == "schema violation"
        assert body["fields"]["name"] == f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
    assert g.admin("GET", "/plugins")[1]["data"] == []


def test_dbless_and_declarative_refuse_plugins_that_do_not_run(gateway, tmp_path):
    refused = [n for n in NOT_RUNNING]
    g = gateway(workers=1, database="off")
    for name in refused:
        if name in enabled(g):
            continue
        doc = {"_format_version": "3.0",
               "services": [{"name": "s", "url": "http://127.0.0.1:9", "plugins": [{"name": name}]}]}
        s, body, _ = g.admin("POST", "/config", doc)
        assert s == 400, (name, body)
        assert "not enabled" in json.dumps(body)
    # declarative_config at start: a start-up error, no process left.
    name = next(n for n in refused if n not in enabled(g))
    path = os.path.join(str(tmp_path), "kong.json")
    with open(path, "w") as f:
        json.dump({"_format_version": "3.0", "plugins": [{"name": name}]}, f)
    g2 = gateway(workers=1, start=False, database="off", declarative_config=path)
    r = g2.cli("start", "-c", g2.conf, "-p", g2.prefix, timeout=TIMEOUT * 3)
    assert r.returncode != 0
    assert "not enabled" in (r.stdout + r.stderr)
    # db_import into an SQLite prefix: refused, nothing stored.
    g3 = gateway(workers=1, start=False)
    r = g3.cli("config", "db_import", path, "-c", g3.conf, "-p", g3.prefix)
    assert r.returncode != 0
    assert "not enabled" in (r.stdout + r.stderr)
