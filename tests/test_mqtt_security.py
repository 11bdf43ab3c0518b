"""The production broker configuration, tested on a real Mosquitto.

deploy/mosquitto/mosquitto.conf and aclfile are copied with only their paths and ports changed
(temporary directories, free loopback ports); the password file is made by `rivermon node add`
and the TLS material by deploy/mosquitto/make-certs.sh, as an operator would.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from rivermon import nodes
from rivermon.cli import main as rivermon_main
from rivermon.core import servers
from rivermon.core.mqtt import make_client

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "mosquitto"
PREFIX = "rivermon/v1"
CREEK = "huanglong"
NODES = ("hl1-s1", "hl2-s1", "hl1-a1", "hl3-a1")
SERVICES = ("ingest", "detect", "control", "web", "sim")


def production_conf_variant(tmp: Path, plain_port: int, tls_port: int) -> str:
    """The committed configuration with its paths under ``tmp`` and its listeners on loopback."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("/etc/mosquitto/rivermon/", f"{tmp}/etc/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp}/data/")
    text = re.sub(r"^listener 1883$", f"listener {plain_port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^listener 8883$", f"listener {tls_port} 127.0.0.1", text, flags=re.M)
    settings = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert "/etc/mosquitto" not in settings and "/var/lib" not in settings
    # Run as the test's own user: as root, Mosquitto would switch to `mosquitto`, which cannot
    # read the test's private temporary directory.
    return text + f"\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"


def issue(*argv: str) -> dict:
    """Run `rivermon node add ... --json` in process and return the credentials it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = rivermon_main(["node", "add", *argv, "--json"])
    assert rc == 0
    return json.loads(out.getvalue())


class Broker:
    def __init__(self, server: servers.ManagedServer, tls_port: int, tls_dir: Path,
                 password_file: Path, creds: dict[str, str]):
        self.server = server
        self.port = server.port
        self.tls_port = tls_port
        self.tls_dir = tls_dir
        self.password_file = password_file
        self.creds = creds


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Broker:
    tmp = tmp_path_factory.mktemp("prodbroker")
    (tmp / "etc").mkdir()
    (tmp / "data").mkdir()
    tls_dir = tmp / "etc" / "tls"
    subprocess.run([str(DEPLOY / "make-certs.sh"), str(tls_dir), "localhost", "127.0.0.1"],
                   check=True, capture_output=True)
    (tmp / "etc" / "aclfile").write_text((DEPLOY / "aclfile").read_text())
    password_file = tmp / "etc" / "passwd"
    creds = {}
    for node in NODES:
        creds[node] = issue(node, "--creek", CREEK, "--password-file", str(password_file))["password"]
    for service in SERVICES:
        c = issue("--service", service, "--password-file", str(password_file))
        creds[c["username"]] = c["password"]
    plain_port, tls_port = servers.free_port(), servers.free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(production_conf_variant(tmp, plain_port, tls_port))
    server = servers.ManagedServer("mosquitto", [servers.find_binary("mosquitto"), "-c", str(conf)],
                                   tmp, plain_port)
    server.start()
    servers.wait_port("127.0.0.1", tls_port, 10, server.proc)
    yield Broker(server, tls_port, tls_dir, password_file, creds)
    server.stop()


class Client:
    """A paho v5 client that records its CONNACK, SUBACKs, PUBACK reason codes and messages."""

    def __init__(self, broker: Broker, user: str | None, password: str | None = None,
                 tls_ca: str | None = "none", port: int | None = None):
        url = "mqtt://127.0.0.1"
        self.client = make_client(url, f"sec-{uuid.uuid4().hex[:8]}", protocol="5")
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else broker.creds[user])
        if tls_ca != "none":
            ctx = ssl.create_default_context(cafile=tls_ca)
            self.client.tls_set_context(ctx)
        self.port = port or broker.port
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.subacks: list[list[ReasonCode]] = []
        self.subscribed = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subacks.append(list(reason_codes))
        self.subscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def connect(self) -> ReasonCode | None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.connected.wait(10)
        return self.connack

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        self.subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(10), "no SUBACK"
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        return info

    def got(self, topic: str, payload: bytes, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if (topic, payload) in self.messages:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def topics(self) -> set[str]:
        with self.lock:
            return {t for t, _ in self.messages}

    def close(self) -> None:
        # Disconnect first (also for refused clients): the network thread then ends at once
        # instead of waiting out its select timeout or retrying.
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(broker):
    made: list[Client] = []

    def make(user: str | None, password: str | None = None, connect: bool = True, **kw) -> Client:
        c = Client(broker, user, password, **kw)
        made.append(c)
        if connect:
            rc = c.connect()
            assert rc is not None and not rc.is_failure, f"{user} could not connect: {rc}"
        return c

    yield make
    for c in made:
        c.close()


def topic(node: str, leaf: str) -> str:
    return f"{PREFIX}/{CREEK}/{node}/{leaf}"


def payload() -> bytes:
    return json.dumps({"ts": time.time(), "do_mg_l": 5.5, "nonce": uuid.uuid4().hex}).encode()


def test_committed_config_matches_the_broker_sizing_rivermon_tests_with():
    conf = dict(line.split(None, 1) for line in (DEPLOY / "mosquitto.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#") and len(line.split(None, 1)) == 2)
    assert int(conf["max_queued_messages"]) == servers.MAX_QUEUED_MESSAGES
    assert int(conf["max_inflight_messages"]) == servers.MAX_INFLIGHT_MESSAGES
    assert int(conf["autosave_interval"]) == servers.AUTOSAVE_INTERVAL_S
    assert conf["max_queued_bytes"] == "0"
    assert conf["allow_anonymous"] == "false"
    assert conf["persistence"] == "true"
    dev = servers.mosquitto_conf(1883, Path("/x"))
    for key in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages", "autosave_interval"):
        assert f"{key} {conf[key]}\n" in dev, key


def test_every_service_account_node_add_issues_has_rights_in_the_aclfile():
    users = {ln.split()[1] for ln in (DEPLOY / "aclfile").read_text().splitlines()
             if ln.startswith("user ")}
    assert set(nodes.SERVICES.values()) == users
    from rivermon.core.reading import ID_RE
    assert not any(ID_RE.match(u) for u in users), "a node id could take a service's name"


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    for path in tracked:
        text = (REPO / path).read_text(errors="replace")
        assert "PRIVATE KEY" not in text, path
        assert not re.search(r"^[^#\s:]+:\$7\$", text, flags=re.M), f"{path} holds a password hash"


def test_anonymous_and_wrong_passwords_are_refused(broker, clients):
    anonymous = clients(None, connect=False)
    assert anonymous.connect().is_failure
    wrong = clients("hl1-s1", "not-the-password", connect=False)
    assert wrong.connect().is_failure
    nobody = clients("no-such-node", "whatever", connect=False)
    assert nobody.connect().is_failure


def test_a_node_cannot_publish_as_another_node(broker, clients):
    ingest = clients("rivermon_ingest")
    ingest.subscribe(f"{PREFIX}/+/+/telemetry", f"{PREFIX}/+/+/status")
    node = clients("hl1-s1")
    forged = [(topic("hl2-s1", "telemetry"), payload()),
              (topic("hl2-s1", "status"), b'{"state": "offline"}'),
              (f"{PREFIX}/{CREEK}/alerts", b'{"id": "forged"}'),
              (topic("hl1-a1", "cmd"), b'{"aerator_on": false}'),
              (f"{PREFIX}/_accepted/{CREEK}", b"[]")]
    for t, p in forged:
        info = node.publish(t, p)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
    own = payload()
    node.publish(topic("hl1-s1", "telemetry"), own)
    # Messages from one client reach a subscriber in order: the own one arriving proves the
    # forged ones, published before it, were dropped by the broker.
    assert ingest.got(topic("hl1-s1", "telemetry"), own)
    assert ingest.topics() == {topic("hl1-s1", "telemetry")}


def test_a_node_cannot_leave_a_last_will_for_another_node(broker, clients):
    ingest = clients("rivermon_ingest")
    ingest.subscribe(f"{PREFIX}/+/+/status")
    own, forged = b'{"state": "offline", "fw": "own"}', b'{"state": "offline", "fw": "forged"}'
    for user, will_topic, will in (("hl1-s1", topic("hl2-s1", "status"), forged),
                                   ("hl2-s1", topic("hl2-s1", "status"), own)):
        c = make_client("mqtt://127.0.0.1", f"will-{user}", protocol="5")
        c.username_pw_set(user, broker.creds[user])
        c.will_set(will_topic, will, qos=1)
        c.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < deadline:
            c.loop(0.05)
        # Die without DISCONNECT: the broker publishes the will (if the node may).
        c.socket().close()
        if user == "hl1-s1":
            time.sleep(0.3)
    assert ingest.got(topic("hl2-s1", "status"), own)
    assert not ingest.got(topic("hl2-s1", "status"), forged, timeout=0)


def test_a_node_reads_its_own_cmd_and_not_another_nodes(broker, clients):
    aerator = clients("hl1-a1")
    aerator.subscribe(topic("hl1-a1", "cmd"), topic("hl3-a1", "cmd"), f"{PREFIX}/#")
    other = clients("hl3-a1")
    detect = clients("rivermon_detect")
    mine, theirs = b'{"aerator_on": true, "ts": 1}', b'{"aerator_on": true, "ts": 2}'
    detect.publish(topic("hl3-a1", "cmd"), theirs)
    other.publish(topic("hl3-a1", "telemetry"), payload())
    detect.publish(topic("hl1-a1", "cmd"), mine)
    assert aerator.got(topic("hl1-a1", "cmd"), mine)
    assert aerator.topics() == {topic("hl1-a1", "cmd")}


def test_service_credentials_have_the_rights_they_need(broker, clients):
    ingest = clients("rivermon_ingest")
    # The ingestor may run several instances on one shared subscription.
    ingest.subscribe(f"$share/ingest/{PREFIX}/+/+/telemetry", f"{PREFIX}/+/+/status")
    detect = clients("rivermon_detect")
    detect.subscribe(f"{PREFIX}/_accepted/#", f"{PREFIX}/+/alerts")
    web = clients("rivermon_web")
    # The panel's live view (web/live.py) follows alerts and the commands aerators are sent.
    web.subscribe(f"{PREFIX}/+/alerts", f"{PREFIX}/+/+/cmd")
    sim = clients("rivermon_sim")
    sim.subscribe(f"{PREFIX}/+/+/cmd")

    # The simulator plays any node.
    reading, status = payload(), b'{"state": "online", "fw": "sim"}'
    sim.publish(topic("hl2-s1", "telemetry"), reading)
    sim.publish(topic("hl7-s1", "status"), status)
    assert ingest.got(topic("hl2-s1", "telemetry"), reading)
    assert ingest.got(topic("hl7-s1", "status"), status)
    # The ingestor hands what it kept to the model.
    accepted = b'[{"node": "hl2-s1"}]'
    ingest.publish(f"{PREFIX}/_accepted/{CREEK}", accepted)
    assert detect.got(f"{PREFIX}/_accepted/{CREEK}", accepted)
    # The model raises alerts and switches aerators; the panel does too.
    alert, cmd, web_cmd = b'{"id": "a-1"}', b'{"aerator_on": true}', b'{"aerator_on": false}'
    detect.publish(f"{PREFIX}/{CREEK}/alerts", alert)
    detect.publish(topic("hl1-a1", "cmd"), cmd)
    web.publish(topic("hl1-a1", "cmd"), web_cmd)
    assert web.got(f"{PREFIX}/{CREEK}/alerts", alert)
    assert sim.got(topic("hl1-a1", "cmd"), cmd)
    assert sim.got(topic("hl1-a1", "cmd"), web_cmd)
    assert web.got(topic("hl1-a1", "cmd"), cmd)
    # A service cannot forge node telemetry either (only the simulator plays nodes).
    forged = payload()
    ingest.publish(topic("hl1-s1", "telemetry"), forged)
    web.publish(topic("hl1-s1", "telemetry"), forged)
    marker = payload()
    sim.publish(topic("hl1-s1", "telemetry"), marker)
    assert ingest.got(topic("hl1-s1", "telemetry"), marker)
    assert not ingest.got(topic("hl1-s1", "telemetry"), forged, timeout=0)


def test_control_account_has_exactly_the_controllers_rights(broker, clients):
    """rivermon_control reads accepted readings, status and alerts; writes cmd and alerts only."""
    control = clients("rivermon_control")
    codes = control.subscribe(f"{PREFIX}/_accepted/+", f"{PREFIX}/+/+/status", f"{PREFIX}/+/alerts",
                              f"{PREFIX}/+/+/telemetry")
    assert [c.is_failure for c in codes] == [False, False, False, False]  # v5 grants, ACL filters
    ingest = clients("rivermon_ingest")
    sim = clients("rivermon_sim")
    sim.subscribe(f"{PREFIX}/+/+/cmd")
    detect = clients("rivermon_detect")
    detect.subscribe(f"{PREFIX}/+/alerts", f"{PREFIX}/_accepted/#")
    accepted, status = b'[{"node": "hl3-s1", "do_mg_l": 3.1}]', b'{"state": "offline"}'
    alert, cmd = b'{"id": "a-ctl", "kind": "aerator_fault"}', b'{"aerator_on": true, "by": "rivermon-control"}'
    ingest.publish(f"{PREFIX}/_accepted/{CREEK}", accepted)
    sim.publish(topic("hl3-s1", "status"), status)
    assert control.got(f"{PREFIX}/_accepted/{CREEK}", accepted)
    assert control.got(topic("hl3-s1", "status"), status)
    detect.publish(f"{PREFIX}/{CREEK}/alerts", b'{"id": "a-model"}')
    assert control.got(f"{PREFIX}/{CREEK}/alerts", b'{"id": "a-model"}')
    control.publish(topic("hl3-a1", "cmd"), cmd)
    control.publish(f"{PREFIX}/{CREEK}/alerts", alert)
    assert sim.got(topic("hl3-a1", "cmd"), cmd)
    assert detect.got(f"{PREFIX}/{CREEK}/alerts", alert)
    # It cannot read telemetry, forge readings, status or accepted batches.
    ingest.subscribe(f"{PREFIX}/+/+/telemetry", f"{PREFIX}/+/+/status")
    forged_reading, forged_accepted = payload(), b'[{"node": "forged"}]'
    control.publish(topic("hl2-s1", "telemetry"), forged_reading)
    control.publish(topic("hl2-s1", "status"), b'{"state": "forged"}')
    control.publish(f"{PREFIX}/_accepted/{CREEK}", forged_accepted)
    marker2 = payload()
    sim.publish(topic("hl2-s1", "telemetry"), marker2)
    assert ingest.got(topic("hl2-s1", "telemetry"), marker2)
    assert not ingest.got(topic("hl2-s1", "telemetry"), forged_reading, timeout=0)
    assert not ingest.got(topic("hl2-s1", "status"), b'{"state": "forged"}', timeout=0)
    assert not detect.got(f"{PREFIX}/_accepted/{CREEK}", forged_accepted, timeout=0.3)
    assert topic("hl2-s1", "telemetry") not in control.topics()


def test_tls_listener_with_the_test_ca(broker, clients):
    ca = str(broker.tls_dir / "ca.crt")
    ingest = clients("rivermon_ingest")
    ingest.subscribe(f"{PREFIX}/+/+/telemetry")
    node = clients("hl2-s1", tls_ca=ca, port=broker.tls_port)
    reading = payload()
    node.publish(topic("hl2-s1", "telemetry"), reading)
    assert ingest.got(topic("hl2-s1", "telemetry"), reading)
    # Over TLS too, a password is required.
    anonymous = clients(None, tls_ca=ca, port=broker.tls_port, connect=False)
    assert anonymous.connect().is_failure


def test_tls_refused_without_the_ca(broker):
    # A client that trusts only the system's CAs refuses the test CA's broker certificate.
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                pass


def test_renewing_a_password_revokes_the_old_one(broker, clients):
    old = broker.creds["hl3-a1"]
    new = issue("hl3-a1", "--creek", CREEK, "--password-file", str(broker.password_file))["password"]
    assert new != old and len(new) >= 32
    broker.server.proc.send_signal(1)  # SIGHUP: Mosquitto reloads its password and ACL files
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if clients("hl3-a1", old, connect=False).connect().is_failure:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the old password still works after the reload")
    assert not clients("hl3-a1", new, connect=False).connect().is_failure
    broker.creds["hl3-a1"] = new


def test_node_add_refuses_bad_input_with_a_reason(tmp_path, capsys):
    pw = str(tmp_path / "passwd")
    assert rivermon_main(["node", "add", "HL1 S1", "--password-file", pw]) == 2
    assert "must match" in capsys.readouterr().err
    assert rivermon_main(["node", "add", "--password-file", pw]) == 2
    assert "either a NODE" in capsys.readouterr().err
    assert rivermon_main(["node", "add", "hl1-s1", "--password-file", str(tmp_path / "no" / "pw")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_node_add_without_mosquitto_passwd_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nodes.shutil, "which", lambda name: None)
    monkeypatch.setattr(nodes.os, "access", lambda path, mode: False)
    assert rivermon_main(["node", "add", "hl1-s1", "--password-file", str(tmp_path / "pw")]) == 2
    assert "apt-get install -y mosquitto" in capsys.readouterr().err


def test_node_add_warns_about_a_node_the_topology_does_not_know(tmp_path, capsys):
    pw = tmp_path / "passwd"
    secret = tmp_path / "secret"
    assert rivermon_main(["node", "add", "zz-new-1", "--password-file", str(pw),
                          "--secret-file", str(secret)]) == 0
    out = capsys.readouterr()
    assert "unassigned" in out.err
    password = secret.read_text().strip()
    assert f"password: {password}" in out.out
    assert (secret.stat().st_mode & 0o777) == 0o600
    assert pw.read_text().startswith("zz-new-1:$7$")


@pytest.mark.e2e
def test_the_real_ingestor_runs_on_its_service_account(broker, clients, service, influx, tmp_path):
    """`rivermon ingest` with the broker URL's password_file, a node over TLS, forged readings."""
    import requests

    secret = tmp_path / "mqtt-ingest.password"
    secret.write_text(broker.creds["rivermon_ingest"] + "\n")
    secret.chmod(0o600)
    metrics = servers.free_port()
    detect = clients("rivermon_detect")
    detect.subscribe(f"{PREFIX}/_accepted/#")
    ingest = service("ingest", "--broker", f"mqtt://rivermon_ingest@127.0.0.1:{broker.port}"
                     f"?password_file={secret}", "--influx", influx.url, "--influx-db", influx.database,
                     "--var", str(tmp_path / "var"), "--ingest-metrics-port", str(metrics),
                     "--ingest-batch-ms", "100", "--ingest-client-id", f"ingest-{uuid.uuid4().hex[:6]}")

    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{metrics}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    deadline = time.monotonic() + 20
    while not ready():
        assert time.monotonic() < deadline and ingest.proc.poll() is None, ingest.log()
        time.sleep(0.1)
    node = clients("hl1-s1", tls_ca=str(broker.tls_dir / "ca.crt"), port=broker.tls_port)
    ts = round(time.time() - 5, 3)
    node.publish(topic("hl2-s1", "telemetry"), json.dumps({"ts": ts, "do_mg_l": 0.1}).encode())
    node.publish(topic("hl1-s1", "telemetry"), json.dumps({"ts": ts, "do_mg_l": 6.4, "seq": 1}).encode())

    def stored() -> list[dict]:
        return influx.rows('SELECT "do_mg_l", "node" FROM "telemetry"')

    deadline = time.monotonic() + 15
    while not stored() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored() == [{"time": int(round(ts * 1000)), "do_mg_l": 6.4, "node": "hl1-s1"}], ingest.log()
    # The ingestor's account may hand what it kept to the model.
    deadline = time.monotonic() + 10
    while f"{PREFIX}/_accepted/{CREEK}" not in detect.topics() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert detect.topics() == {f"{PREFIX}/_accepted/{CREEK}"}, ingest.log()
    assert "not authori" not in ingest.log().lower()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the broker drops root for `mosquitto`")
def test_as_root_the_broker_reads_its_files_as_the_mosquitto_user(tmp_path):
    """The bare-metal layout of docs/deploy.md: no `user` override, files as the tools make them."""
    import grp
    import shutil as sh
    import tempfile

    try:
        grp.getgrnam("mosquitto")
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto user and group (Debian's mosquitto package makes them)")
    base = Path(tempfile.mkdtemp(prefix="rivermon-baremetal-"))
    try:
        base.chmod(0o711)
        etc, data = base / "etc", base / "data"
        etc.mkdir(mode=0o755)
        data.mkdir()
        sh.chown(data, "mosquitto", "mosquitto")
        subprocess.run([str(DEPLOY / "make-certs.sh"), str(etc / "tls"), "localhost", "127.0.0.1"], check=True,
                       capture_output=True)
        (etc / "aclfile").write_text((DEPLOY / "aclfile").read_text())
        (etc / "aclfile").chmod(0o644)
        password = issue("--service", "ingest", "--password-file", str(etc / "passwd"))["password"]
        assert (etc / "passwd").stat().st_gid == grp.getgrnam("mosquitto").gr_gid
        plain, tls = servers.free_port(), servers.free_port()
        conf = production_conf_variant(base, plain, tls).rsplit("\nuser ", 1)[0] + "\n"
        (base / "mosquitto.conf").write_text(conf)
        log_dir = tmp_path / "log"
        server = servers.ManagedServer("mosquitto", [servers.find_binary("mosquitto"), "-c",
                                                     str(base / "mosquitto.conf")], log_dir, plain)
        server.start()
        try:
            servers.wait_port("127.0.0.1", tls, 10, server.proc)
            c = make_client(f"mqtts://rivermon_ingest:{password}@127.0.0.1:{tls}"
                            f"?ca={etc / 'tls' / 'ca.crt'}", f"bm-{uuid.uuid4().hex[:6]}", protocol="5")
            result: list = []
            c.on_connect = lambda cl, u, f, rc, p: result.append(rc)
            c.connect("127.0.0.1", tls)
            deadline = time.monotonic() + 5
            while not result and time.monotonic() < deadline:
                c.loop(0.05)
            c.disconnect()
            assert result and not result[0].is_failure, server.tail_log()
        finally:
            server.stop()
    finally:
        sh.rmtree(base, ignore_errors=True)
