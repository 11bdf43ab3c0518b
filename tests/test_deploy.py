"""Deployment files: docker-compose.yml, Dockerfile, Grafana provisioning, systemd units.

No Docker engine runs here, so the compose file is parsed and checked: services, ports,
volumes, every file it references, and every command against the real `rivermon` parser. Every
InfluxQL query of the Grafana dashboard runs against the real InfluxDB of the fixtures.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from rivermon.cli import build_parser
from rivermon.core.config import load_config
from rivermon.core.influx import line
from rivermon.core.mqtt import parse_broker_url
from rivermon.core.servers import find_binary

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SECRETS = DEPLOY / "secrets"
RIVERMON_SERVICES = {"ingest": "ingest", "detect": "detect", "control": "control", "web": "web",
                     "sim": "sim", "notify": "notify"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def acl_users() -> set[str]:
    return {ln.split()[1] for ln in (DEPLOY / "mosquitto" / "aclfile").read_text().splitlines()
            if ln.startswith("user ")}


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host source, container target) of a service's bind mounts (sources starting with . or /)."""
    out = []
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def named_volumes(service: dict) -> list[str]:
    return [v.split(":")[0] for v in service.get("volumes", [])
            if not v.split(":")[0].startswith((".", "/"))]


def is_deploy_time_secret(rel: str) -> bool:
    """Made by deploy/bootstrap.sh, listed in deploy/secrets/README.md, and ignored by git."""
    path = (REPO / rel).resolve()
    if SECRETS.resolve() not in path.parents:
        return False
    listed = (SECRETS / "README.md").read_text()
    name = path.relative_to(SECRETS.resolve()).as_posix()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO).returncode == 0
    return f"`{name}`" in listed and ignored


# ---- docker-compose.yml ---------------------------------------------------------------------

def test_compose_has_the_stack_with_its_images_ports_and_profiles(compose):
    services = compose["services"]
    assert set(services) >= {"mosquitto", "influxdb", "ingest", "detect", "control", "web", "sim",
                             "grafana"}
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:1.11"
    assert services["grafana"]["image"].startswith("grafana/grafana")
    assert "8080:8080" in services["web"]["ports"]
    assert "8883:8883" in services["mosquitto"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    # The broker's plain port and the database stay on the compose network.
    assert "ports" not in services["influxdb"]
    assert not any(p.startswith("1883") for p in services["mosquitto"]["ports"])
    assert services["sim"]["profiles"] == ["sim"]
    assert services["notify"]["profiles"] == ["notify"]
    for name in ("ingest", "detect", "control", "web", "grafana", "mosquitto", "influxdb"):
        assert "profiles" not in services[name], name
    for name in RIVERMON_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["restart"] in ("always", "unless-stopped")


def test_compose_volumes_are_declared_and_hold_the_state(compose):
    services, declared = compose["services"], set(compose["volumes"])
    used = {v for s in services.values() for v in named_volumes(s)}
    assert used <= declared, f"undeclared volumes {used - declared}"
    assert {"mosquitto", "influxdb"} <= declared
    assert ("mosquitto", "/var/lib/mosquitto") in [
        tuple(v.split(":")[:2]) for v in services["mosquitto"]["volumes"]]
    assert "influxdb:/var/lib/influxdb" in services["influxdb"]["volumes"]
    assert "grafana:/var/lib/grafana" in services["grafana"]["volumes"]
    for name in RIVERMON_SERVICES:
        assert "rivermon:/var/lib/rivermon" in services[name]["volumes"]


def test_every_file_compose_references_exists_or_is_a_listed_deploy_time_secret(compose):
    referenced = []
    for service in compose["services"].values():
        referenced += [src for src, _ in bind_mounts(service)]
        env_file = service.get("env_file", [])
        referenced += [env_file] if isinstance(env_file, str) else env_file
    referenced += [s["file"] for s in compose["secrets"].values()]
    assert (REPO / "Dockerfile").is_file()
    missing = [r for r in referenced if not (REPO / r).exists() and not is_deploy_time_secret(r)]
    assert not missing, f"compose references files that are neither in the repo nor deploy-time secrets: {missing}"
    committed = [r for r in referenced if is_deploy_time_secret(r)]
    assert committed, "the password file and TLS material are expected under deploy/secrets"
    tracked = subprocess.run(["git", "ls-files", "deploy/secrets"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert set(tracked) <= {"deploy/secrets/.gitignore", "deploy/secrets/README.md"}


def test_broker_mounts_cover_every_path_of_the_production_config(compose):
    mounts = [target for _, target in bind_mounts(compose["services"]["mosquitto"])]
    mounts += [v.split(":")[1] for v in compose["services"]["mosquitto"]["volumes"]]
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    paths = re.findall(r"^(?:password_file|acl_file|cafile|certfile|keyfile|persistence_location) (\S+)",
                       conf, flags=re.M)
    assert len(paths) == 6
    for path in paths:
        assert any(path == m or path.startswith(m.rstrip("/") + "/") or m.rstrip("/") == path.rstrip("/")
                   for m in mounts), f"{path} of mosquitto.conf is not mounted"
    entry = " ".join(compose["services"]["mosquitto"]["entrypoint"])
    assert "-c /etc/mosquitto/mosquitto.conf" in entry


def test_rivermon_commands_parse_and_use_their_own_broker_accounts(compose):
    parser = build_parser()
    users = acl_users()
    for name, subcommand in RIVERMON_SERVICES.items():
        service = compose["services"][name]
        args = parser.parse_args(service["command"])
        assert args.command == subcommand
        assert args.influx == "http://influxdb:8086"
        url = args.broker
        assert url.startswith("mqtt://") and "@mosquitto:1883" in url
        # The password comes from the service's own compose secret, never the compose file.
        secret_target = {s["target"] for s in service["secrets"]}
        password_file = re.search(r"password_file=([^&]+)", url).group(1)
        assert password_file in {f"/run/secrets/{t}" for t in secret_target}
        username = url.split("//", 1)[1].split("@", 1)[0]
        assert ":" not in username, "no password in the compose file"
        assert username in users, f"{name}: broker user {username} has no rights in the aclfile"
        assert {s["source"] for s in service["secrets"]} <= set(compose["secrets"])
        env = service.get("environment", {})
        cfg_path = env.get("RIVERMON_CONFIG")
        mounted = dict((t, s) for s, t in bind_mounts(service))
        assert cfg_path in mounted, f"{name}: the config file is not mounted"
        cfg = load_config(REPO / mounted[cfg_path], env={k: str(v) for k, v in env.items()
                                                         if k != "RIVERMON_CONFIG"})
        assert cfg.var == "/var/lib/rivermon"
    assert load_config(REPO / "deploy" / "rivermon.toml", env={}).web_host == "127.0.0.1"
    assert compose["services"]["web"]["environment"]["RIVERMON_WEB_HOST"] == "0.0.0.0"


def test_broker_url_password_file_reads_the_secret(tmp_path):
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret-Value_x\n")
    b = parse_broker_url(f"mqtt://rivermon_ingest@mosquitto:1883?password_file={secret}")
    assert (b.username, b.password, b.host, b.port) == ("rivermon_ingest", "s3cret-Value_x", "mosquitto", 1883)
    with pytest.raises(ValueError, match="password_file"):
        parse_broker_url(f"mqtt://u@h?password_file={tmp_path / 'missing'}")
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="empty"):
        parse_broker_url(f"mqtt://u@h?password_file={tmp_path / 'empty'}")


# ---- Dockerfile -----------------------------------------------------------------------------

def test_dockerfile_installs_the_package_and_runs_rivermon():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, flags=re.M)
    assert re.search(r'^ENTRYPOINT \["rivermon"\]', text, flags=re.M)
    assert re.search(r"^USER (?!root)\S+", text, flags=re.M)
    copied = [m.split()[0] for m in re.findall(r"^COPY (.+?) \S+$", text, flags=re.M)]
    sources = [s for c in copied for s in c.split()] if copied else []
    for src in sources:
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    missing = folders - set(sources)
    assert not missing, f"the image would miss the package folders {missing}"
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {"deploy/secrets", ".env", ".venv", "var"} <= set(ignore)


# ---- Grafana --------------------------------------------------------------------------------

def grafana_files(compose) -> tuple[dict, dict, Path]:
    mounts = dict((t, s) for s, t in bind_mounts(compose["services"]["grafana"]))
    prov = REPO / mounts["/etc/grafana/provisioning"]
    datasources = [yaml.safe_load(p.read_text()) for p in sorted((prov / "datasources").glob("*.y*ml"))]
    providers = [yaml.safe_load(p.read_text()) for p in sorted((prov / "dashboards").glob("*.y*ml"))]
    assert len(datasources) == 1 and len(providers) == 1
    provider = providers[0]["providers"][0]
    path = provider["options"]["path"]
    assert path in mounts, f"dashboard path {path} is not mounted into Grafana"
    return datasources[0], provider, REPO / mounts[path]


def test_grafana_provisions_an_influxql_datasource_and_the_creek_dashboard(compose):
    datasources, provider, dashboards = grafana_files(compose)
    (ds,) = datasources["datasources"]
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == "rivermon"
    assert ds["url"] == "http://influxdb:8086"
    assert compose["services"]["influxdb"]["environment"]["INFLUXDB_DB"] == "rivermon"
    files = sorted(dashboards.glob("*.json"))
    assert files, "no dashboard JSON"
    for f in files:
        dash = json.loads(f.read_text())
        uids = {json.dumps(x["datasource"]) for x in _with_datasource(dash)}
        assert uids == {json.dumps({"type": "influxdb", "uid": ds["uid"]})}
        titles = " ".join(p["title"] for p in dash["panels"])
        assert "Dissolved oxygen" in titles and "Turbidity" in titles
        annotations = [a for a in dash["annotations"]["list"] if "query" in a]
        assert annotations and all('FROM "alerts"' in a["query"] for a in annotations)


def _with_datasource(dash: dict) -> list[dict]:
    items = [p for p in dash["panels"]] + [t for p in dash["panels"] for t in p.get("targets", [])]
    items += [v for v in dash["templating"]["list"] if v.get("type") == "query"]
    items += [a for a in dash["annotations"]["list"] if not a.get("builtIn")]
    return items


def dashboard_queries(dash: dict) -> list[tuple[str, str]]:
    out = [(f"panel {p['title']}", t["query"]) for p in dash["panels"] for t in p.get("targets", [])]
    out += [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"] if v.get("query")]
    out += [(f"annotation {a['name']}", a["query"]) for a in dash["annotations"]["list"] if a.get("query")]
    return out


def grafana_substitute(query: str, start_ms: int, end_ms: int, variables: dict[str, list[str]]) -> str:
    """What Grafana sends: $timeFilter and $__interval expanded, variables as regex alternations."""
    q = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval", "1m")
    for name, values in variables.items():
        escaped = [re.sub(r"([\\/^$.|?*+()\[\]{}-])", r"\\\1", v) for v in values]
        value = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        q = q.replace(f"${name}", value)
    assert "$" not in q.replace("/^", "").replace("$/", ""), f"unexpanded variable in {q}"
    return q


def test_every_dashboard_query_runs_on_real_influxdb(compose, influx):
    now_ms = int(time.time() * 1000)
    lines = []
    for i in range(10):
        t = now_ms - (10 - i) * 60_000
        for seg, node, do in (("hl-1", "hl1-s1", 6.2), ("hl-3", "hl3-s1", 1.4)):
            lines.append(line("telemetry", {"creek": "huanglong", "segment": seg, "node": node, "kind": "sensor"},
                              {"do_mg_l": do, "turbidity_ntu": 12.0 + i, "temp_c": 27.0, "battery_v": 3.9,
                               "seq": i}, t))
        lines.append(line("telemetry", {"creek": "huanglong", "segment": "hl-3", "node": "hl3-a1", "kind": "aerator"},
                          {"aerator_on": True, "power_w": 750.0}, t))
    lines.append(line("alerts", {"creek": "huanglong", "segment": "hl-3", "kind": "black_odorous",
                                 "severity": "critical"},
                      {"id": "a-1", "node": "hl3-s1", "state": "open", "summary": "溶解氧过低"}, now_ms - 300_000))
    lines.append(line("alerts", {"creek": "huanglong", "segment": "hl-1", "kind": "turbidity_spike",
                                 "severity": "warning"},
                      {"id": "a-2", "node": "hl1-s1", "state": "resolved", "summary": "浊度突升"}, now_ms - 200_000))
    influx.write_lines(lines)
    _, _, dashboards = grafana_files(compose)
    start, end = now_ms - 3_600_000, now_ms + 60_000
    ran = 0
    for f in sorted(dashboards.glob("*.json")):
        dash = json.loads(f.read_text())
        for variables in ({"creek": ["huanglong"], "segment": ["hl-1", "hl-3"]},
                          {"creek": ["huanglong"], "segment": ["hl-3"]}):
            for where, query in dashboard_queries(dash):
                q = grafana_substitute(query, start, end, variables)
                results = influx.query(q)  # raises on any InfluxQL error
                assert results and "error" not in results[0], where
                ran += 1
        by_title = {p["title"]: p["targets"][0]["query"] for p in dash["panels"]}
        all_segments = {"creek": ["huanglong"], "segment": ["hl-1", "hl-3"]}
        do = next(q for t, q in by_title.items() if "Dissolved oxygen" in t)
        series = influx.query(grafana_substitute(do, start, end, all_segments))[0]["series"]
        assert {s["tags"]["segment"] for s in series} == {"hl-1", "hl-3"}
        turb = next(q for t, q in by_title.items() if "Turbidity" in t)
        series = influx.query(grafana_substitute(turb, start, end, all_segments))[0]["series"]
        assert {s["tags"]["segment"] for s in series} == {"hl-1", "hl-3"}
        notes = [a for a in dash["annotations"]["list"] if a.get("query")]
        seen = []
        for a in notes:
            rows = influx.rows(grafana_substitute(a["query"], start, end, all_segments))
            seen += [r[a["textColumn"]] for r in rows]
            for column in a["tagsColumn"].split(","):
                assert all(column in r for r in rows), column
        assert sorted(seen) == sorted(["溶解氧过低", "浊度突升"]), "each alert is one annotation"
        segments = next(v for v in dash["templating"]["list"] if v["name"] == "segment")
        values = influx.rows(grafana_substitute(segments["query"], start, end, {"creek": ["huanglong"]}))
        assert {r["value"] for r in values} == {"hl-1", "hl-3"}
    assert ran >= 20


# ---- systemd --------------------------------------------------------------------------------

def unit_entries(path: Path) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        if "=" in raw and not raw.startswith(("#", ";", "[")):
            key, value = raw.split("=", 1)
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


UNITS = ("ingest", "detect", "control", "web", "sim", "notify")
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
             "CapabilityBoundingSet": ""}


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_runs_a_real_subcommand_hardened(name):
    e = unit_entries(DEPLOY / "systemd" / f"rivermon-{name}.service")
    assert e["Restart"] == ["always"]
    assert e["User"] == ["rivermon"] and e["Group"] == ["rivermon"]
    assert e["EnvironmentFile"][0].lstrip("-") == "/etc/rivermon/rivermon.env"
    for key, value in HARDENING.items():
        assert e.get(key) == [value], key
    argv = shlex.split(e["ExecStart"][0].replace("%d", "/run/credentials/x"))
    assert argv[0] == "/opt/rivermon/venv/bin/rivermon"
    args = build_parser().parse_args(argv[1:])
    assert args.command == name
    assert args.config == "/etc/rivermon/rivermon.toml"
    user = args.broker.split("//", 1)[1].split("@", 1)[0]
    assert user in acl_users()
    assert "password_file=/run/credentials/x/mqtt_password" in args.broker
    assert f"mqtt_password:/etc/rivermon/secrets/mqtt-{name}.password" in e["LoadCredential"]
    if name == "notify":
        assert args.notify_routes == "/run/credentials/x/notify_routes"
        assert "notify_routes:/etc/rivermon/secrets/notify-routes.toml" in e["LoadCredential"]


def test_systemd_units_verify(tmp_path):
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    for f in (DEPLOY / "systemd").iterdir():
        if f.suffix in (".service", ".target"):
            (tmp_path / f.name).write_text(f.read_text().replace("/opt/rivermon/venv/bin/rivermon", "/bin/true"))
    units = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run([verify, "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_example_environment_file_sets_only_known_settings():
    from rivermon.core.config import BY_NAME

    names = [raw.lstrip("#").strip().split("=", 1)[0]
             for raw in (DEPLOY / "systemd" / "rivermon.env").read_text().splitlines()
             if re.match(r"^#?RIVERMON_[A-Z_]+=", raw)]
    assert names
    for n in names:
        assert n[len("RIVERMON_"):].lower() in BY_NAME, f"{n} is not a rivermon setting"


# ---- bootstrap and docs ---------------------------------------------------------------------

def test_bootstrap_makes_every_deploy_time_secret_compose_needs(tmp_path, compose):
    find_binary("mosquitto")  # the test machines have it; mosquitto_passwd comes with it
    secrets = tmp_path / "secrets"
    env = {**os.environ, "SECRETS_DIR": str(secrets), "SECRETS_NO_CHOWN": "1",
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    subprocess.run([str(DEPLOY / "bootstrap.sh"), "broker.example", "10.0.0.5"], env=env,
                   check=True, capture_output=True, text=True)
    for service in compose["services"].values():
        for src, _ in bind_mounts(service):
            if is_deploy_time_secret(src):
                rel = (REPO / src).resolve().relative_to(SECRETS.resolve())
                assert (secrets / rel).exists(), f"bootstrap did not make {rel}"
    for s in compose["secrets"].values():
        rel = (REPO / s["file"]).resolve().relative_to(SECRETS.resolve())
        assert (secrets / rel).read_text().strip(), f"bootstrap did not make {rel}"
    users = {ln.split(":")[0] for ln in (secrets / "mosquitto.passwd").read_text().splitlines()}
    assert users == {"rivermon_ingest", "rivermon_detect", "rivermon_control", "rivermon_web",
                     "rivermon_sim", "rivermon_notify"}
    assert (secrets.stat().st_mode & 0o777) == 0o700
    before = (secrets / "mqtt-ingest.password").read_text()
    subprocess.run([str(DEPLOY / "bootstrap.sh"), "broker.example"], env=env, check=True,
                   capture_output=True)
    assert (secrets / "mqtt-ingest.password").read_text() == before, "a second run keeps secrets"


def test_deploy_doc_covers_install_compose_broker_and_precedence():
    doc = (REPO / "docs" / "deploy.md").read_text()
    assert "(configuration.md)" in doc
    for needle in ("docker compose", "systemctl", "rivermon node add", "1,000,000", "690",
                   "mosquitto_passwd", "8883", "precedence"):
        assert needle in doc, needle
