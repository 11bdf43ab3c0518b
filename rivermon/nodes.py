"""`rivermon node add`: issue MQTT credentials for a node or a service on the production broker.

The broker (deploy/mosquitto/mosquitto.conf) refuses anonymous clients and lets a node publish
only under its own topic (its user name is its node id, see deploy/mosquitto/aclfile). This
command makes a strong random password, stores its hash in Mosquitto's password file with
``mosquitto_passwd -b`` and prints the password once: it is kept nowhere else (unless
``--secret-file`` asks for a copy for a service).
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from rivermon.core.config import Config
from rivermon.core.reading import ID_RE, cmd_topic, status_topic, telemetry_topic

DEFAULT_PASSWORD_FILE = "/etc/mosquitto/rivermon/passwd"
MOSQUITTO_PASSWD_HINT = ("mosquitto_passwd is not installed: run `apt-get install -y mosquitto` "
                         "(Debian ships it with the broker)")
# Service accounts: the name has an underscore, which no node id can have (contract grammar),
# so a node can never be issued a service's rights. Rights are in deploy/mosquitto/aclfile.
SERVICES = {
    "ingest": "rivermon_ingest",
    "detect": "rivermon_detect",
    "control": "rivermon_control",
    "web": "rivermon_web",
    "notify": "rivermon_notify",
    "sim": "rivermon_sim",
}
# 32 URL-safe characters (192 bits): safe in a broker URL's user:password@ without escaping.
PASSWORD_BYTES = 24


class NodeError(ValueError):
    """The credentials could not be issued; the message says why."""


@dataclass(frozen=True)
class Credentials:
    """What `node add` issued: the account, its password (shown once) and its topics."""

    username: str
    password: str
    password_file: str
    kind: str  # "node" or "service"
    creek: str = ""
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


def new_password() -> str:
    """A fresh random password."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def find_mosquitto_passwd() -> str:
    """The mosquitto_passwd binary, or a NodeError that says how to install it."""
    for candidate in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NodeError(MOSQUITTO_PASSWD_HINT)


def ensure_password_file(path: Path) -> None:
    """Create an empty password file readable by the broker only (mosquitto_passwd -b needs one)."""
    if path.exists():
        return
    if not path.parent.is_dir():
        raise NodeError(f"password file directory {path.parent} does not exist")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.close(fd)
    os.chmod(path, 0o640)  # whatever the umask
    _give_to_broker_group(path)


def _give_to_broker_group(path: Path) -> None:
    """As root on a Debian host: root:mosquitto 0640, so the broker reads it after dropping root."""
    if os.geteuid() != 0:
        return
    try:
        os.chown(path, 0, grp.getgrnam("mosquitto").gr_gid)
    except KeyError:
        pass  # no mosquitto group (a container build host): 0640 root is what we can do


def set_password(password_file: Path, username: str, password: str) -> None:
    """Add or update one user's entry in a Mosquitto password file."""
    binary = find_mosquitto_passwd()
    ensure_password_file(password_file)
    result = subprocess.run([binary, "-b", str(password_file), username, password],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise NodeError(f"mosquitto_passwd could not update {password_file}: {detail}")


def write_secret_file(path: Path, password: str) -> None:
    """A copy of a service's password for ``--broker ...?password_file=PATH`` (mode 0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    os.replace(tmp, path)


def node_credentials(node: str, creek: str, prefix: str, password_file: Path) -> Credentials:
    """A node's account (user name = node id) with a new password and the topics it may use."""
    if not ID_RE.match(node):
        raise NodeError(f"node id {node!r} must match [a-z0-9][a-z0-9-]{{0,31}} (contract)")
    if not ID_RE.match(creek):
        raise NodeError(f"creek id {creek!r} must match [a-z0-9][a-z0-9-]{{0,31}} (contract)")
    return Credentials(
        username=node, password=new_password(), password_file=str(password_file), kind="node",
        creek=creek,
        publish=(telemetry_topic(prefix, creek, node), status_topic(prefix, creek, node)),
        subscribe=(cmd_topic(prefix, creek, node),))


def service_credentials(service: str, password_file: Path) -> Credentials:
    """A service's account (rights in deploy/mosquitto/aclfile) with a new password."""
    if service not in SERVICES:
        raise NodeError(f"service {service!r} must be one of {', '.join(SERVICES)}")
    return Credentials(username=SERVICES[service], password=new_password(),
                       password_file=str(password_file), kind="service")


def topology_check(cfg: Config, creek: str | None, node: str) -> tuple[str, str | None]:
    """The node's creek (the topology's only one when not given) and a warning to print, if any."""
    from rivermon.core.topology import load_topology

    topo = load_topology(cfg.topology or None)
    if creek is None:
        ids = [c.id for c in topo.creeks]
        if len(ids) != 1:
            raise NodeError(f"the topology has creeks {', '.join(ids)}: choose one with --creek")
        creek = ids[0]
    if topo.creek(creek) is None:
        return creek, f"warning: creek {creek!r} is not in the topology {topo.source}"
    if topo.node(creek, node) is None:
        return creek, (f"warning: node {node!r} is not in the topology of {creek!r}: its readings "
                       "will be stored with segment 'unassigned' until it is added there")
    return creek, None


def render(creds: Credentials) -> str:
    """The credentials as an operator reads them."""
    lines = [f"{creds.kind} {creds.username}: credentials issued (the password is shown once "
             "and stored nowhere else)",
             f"  username: {creds.username}",
             f"  password: {creds.password}"]
    lines += [f"  publish:   {t}" for t in creds.publish]
    lines += [f"  subscribe: {t}" for t in creds.subscribe]
    if creds.kind == "node":
        lines.append("  broker:    mqtts://BROKER:8883 with the deployment's ca.crt "
                     "(status retained, QoS 1, also as the last will)")
    lines.append(f"  password file {creds.password_file} updated; apply with "
                 "`systemctl reload mosquitto` or `docker compose kill -s HUP mosquitto`")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `rivermon node add`."""
    p = sub.add_parser("node", help="issue MQTT credentials for nodes and services")
    node_sub = p.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    add = node_sub.add_parser(
        "add", parents=[common],
        help="add or renew a node's (or a service's) broker password",
        description="Make a strong random password, store it in the Mosquitto password file "
                    "with mosquitto_passwd -b, print it once.")
    add.add_argument("node", nargs="?", metavar="NODE", help="node id (the MQTT user name)")
    add.add_argument("--service", choices=sorted(SERVICES),
                     help="issue a service account instead of a node")
    add.add_argument("--creek", help="the node's creek (default: the topology's only creek)")
    add.add_argument("--password-file", default=DEFAULT_PASSWORD_FILE, metavar="FILE",
                     help=f"Mosquitto password file [default: {DEFAULT_PASSWORD_FILE}]")
    add.add_argument("--secret-file", metavar="FILE",
                     help="also write the password to FILE (mode 0600) for "
                          "--broker mqtt://USER@HOST?password_file=FILE")
    add.add_argument("--json", action="store_true", help="print the credentials as JSON")
    add.set_defaults(func=_add)


def _add(args: argparse.Namespace, cfg: Config) -> int:
    try:
        creds, warning = _issue(args, cfg)
    except NodeError as exc:
        print(f"rivermon node add: {exc}", file=sys.stderr)
        return 2
    if warning:
        print(warning, file=sys.stderr)
    print(json.dumps(asdict(creds), ensure_ascii=False) if args.json else render(creds))
    return 0


def _issue(args: argparse.Namespace, cfg: Config) -> tuple[Credentials, str | None]:
    if bool(args.node) == bool(args.service):
        raise NodeError("give either a NODE id or --service NAME")
    password_file = Path(args.password_file)
    warning = None
    if args.service:
        if args.creek:
            raise NodeError("--creek applies to nodes, not to --service")
        creds = service_credentials(args.service, password_file)
    else:
        creek, warning = topology_check(cfg, args.creek, args.node)
        creds = node_credentials(args.node, creek, cfg.topic_prefix, password_file)
    set_password(password_file, creds.username, creds.password)
    if args.secret_file:
        write_secret_file(Path(args.secret_file), creds.password)
    return creds, warning
