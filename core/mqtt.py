"""MQTT connection settings from a broker URL, and a paho-mqtt 2.x client factory."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False

    def display(self) -> str:
        """The URL without its password, for logs and /healthz."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerURL:
    """``mqtt://[user:pass@]host[:1883]`` or ``mqtts://...[:8883]?ca=F&cert=F&key=F&insecure=1``.

    ``?password_file=F`` reads the password from a file (a Docker or systemd secret), so it
    appears neither in the command line nor in the configuration.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"broker URL {url!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT")
    tls = parts.scheme in ("mqtts", "ssl")
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    password = unquote(parts.password) if parts.password else None
    if q.get("password_file"):
        password = _read_secret(q["password_file"])
    return BrokerURL(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=password,
        ca=q.get("ca"), cert=q.get("cert"), key=q.get("key"),
        insecure=q.get("insecure", "0") in ("1", "true", "yes"),
    )


def _read_secret(path: str) -> str:
    """The first line of a secret file, without its line end."""
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.readline().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"broker URL password_file {path}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"broker URL password_file {path} is empty")
    return secret


def protocol_of(version: str) -> mqtt.MQTTProtocolVersion:
    if version in ("5", "5.0", "v5"):
        return mqtt.MQTTv5
    if version in ("3.1.1", "311", "v311", "4"):
        return mqtt.MQTTv311
    raise ValueError(f"mqtt_protocol {version!r} must be '5' or '3.1.1'")


def make_client(url: str | BrokerURL, client_id: str = "", protocol: str = "5",
                manual_ack: bool = False, clean: bool = True,
                client_class: type[mqtt.Client] = mqtt.Client) -> mqtt.Client:
    """A configured but unconnected paho client (callback API v2).

    ``clean=False`` with MQTT 3.1.1 asks for a persistent session; with v5 the session is
    controlled by ``clean_start`` and the Session Expiry Interval at connect time.
    ``client_class`` may be a subclass of paho's Client (the ingestor's buffered one).
    """
    b = parse_broker_url(url) if isinstance(url, str) else url
    proto = protocol_of(protocol)
    kwargs = {}
    if proto != mqtt.MQTTv5:
        kwargs["clean_session"] = clean
    client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                          protocol=proto, manual_ack=manual_ack, **kwargs)
    if b.username is not None:
        client.username_pw_set(b.username, b.password)
    if b.tls:
        ctx = ssl.create_default_context(cafile=b.ca)
        if b.cert:
            ctx.load_cert_chain(b.cert, b.key)
        if b.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client.tls_set_context(ctx)
    return client


def connect_properties(session_expiry_s: int):
    """v5 CONNECT properties asking the broker to keep the session after a disconnect."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return props
