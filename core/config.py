"""Settings, declared once as data.

Every key rivermon reads is a :class:`Setting` in :data:`SETTINGS`: its name, type, default and
help. The same declaration drives loading (TOML file, then ``RIVERMON_*`` environment variables,
then command-line flags, later ones winning), the ``rivermon config`` listing and
``docs/configuration.md`` (a test fails when the two drift apart).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

ENV_PREFIX = "RIVERMON_"


class ConfigError(ValueError):
    """A setting is missing, unknown or of the wrong type; the message names the key."""


@dataclass(frozen=True)
class Setting:
    """One configuration key."""

    name: str
    type: type
    default: Any
    help: str
    section: str = "general"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _s(section: str) -> Callable[..., Setting]:
    def make(name: str, type_: type, default: Any, help_: str) -> Setting:
        return Setting(name, type_, default, help_, section)

    return make


_general = _s("general")
_ingest = _s("ingest")
_detect = _s("detect")
_web = _s("web")
_sim = _s("sim")
_notify = _s("notify")
_up = _s("up")
_control = _s("control")

SETTINGS: tuple[Setting, ...] = (
    # -- general: where things are -------------------------------------------------------
    _general("topology", str, "", "Topology TOML file; empty means the shipped Huanglong Creek."),
    _general("broker", str, "mqtt://127.0.0.1:1883",
             "MQTT broker URL: mqtt:// or mqtts:// (TLS), user:password@ allowed, "
             "query ?ca=FILE&cert=FILE&key=FILE&insecure=1 for TLS material."),
    _general("influx", str, "http://127.0.0.1:8086",
             "InfluxDB v1 HTTP API URL (http or https); user:password@ for basic auth."),
    _general("influx_db", str, "rivermon", "InfluxDB database name."),
    _general("topic_prefix", str, "rivermon/v1", "MQTT topic prefix of the contract."),
    _general("mqtt_protocol", str, "5", "MQTT protocol version: '5' or '3.1.1'."),
    _general("var", str, "./var", "Directory for local state (spool, SQLite, broker data)."),
    _general("log_level", str, "INFO", "Log level: DEBUG, INFO, WARNING, ERROR."),
    _general("timezone", str, "Asia/Shanghai", "Time zone for display and alert ids."),
    # -- ingest ----------------------------------------------------------------------------
    _ingest("ingest_client_id", str, "rivermon-ingest",
            "MQTT client id of the ingestor (persistent session key; unique per ingestor)."),
    _ingest("ingest_share_group", str, "",
            "When set, subscribe through $share/GROUP/... so several ingestors split the stream."),
    _ingest("ingest_session_expiry_s", int, 7 * 24 * 3600,
            "MQTT v5 session expiry: how long the broker keeps the ingestor's queue while it is down."),
    _ingest("ingest_batch_size", int, 5000, "Flush a write batch at this many points."),
    _ingest("ingest_batch_ms", int, 200, "Flush a write batch at least this often (milliseconds)."),
    _ingest("ingest_spool_max_mb", int, 1024,
            "Bound of the on-disk write-ahead spool; when full, acknowledgements stop "
            "and the broker holds the rest."),
    _ingest("ingest_rejects_per_hour", int, 200,
            "Full rows (raw payload, topic, reason, detail) the rejects store takes per clock hour "
            "per ingestor; beyond it only the per-reason counters grow (rejects_overflow, /metrics)."),
    _ingest("ingest_rejects_keep_days", int, 30,
            "Rejects rows older than this are deleted (hourly); 0 keeps them."),
    _ingest("ingest_fsync", bool, True,
            "fdatasync the spool before acknowledging (off: survives kill -9 but not power loss)."),
    _ingest("ingest_publish_accepted", bool, True,
            "Publish accepted readings on {prefix}/_accepted/{creek} for the model service."),
    _ingest("ingest_metrics_port", int, 9108,
            "Port of the ingestor's /metrics, /livez and /readyz (0 turns it off)."),
    # -- detect ----------------------------------------------------------------------------
    _detect("detect_client_id", str, "rivermon-detect", "MQTT client id of the model service."),
    _detect("alert_autoresolve_s", int, 1800,
            "An alert whose condition has been clear this long is resolved automatically."),
    _detect("detect_state_interval_s", int, 60, "How often the model checkpoints its state."),
    _detect("detect_session_expiry_s", int, 24 * 3600,
            "MQTT v5 session expiry of the model service: how long the broker queues accepted "
            "readings for it while it is down."),
    _detect("detect_tick_s", float, 5.0,
            "How often (wall-clock seconds) the model checks for silent nodes and quiet alerts."),
    _detect("detect_do_low_mg_l", float, 3.0,
            "low_do below this DO (mg/L); 3.0 is the GB 3838 class IV minimum."),
    _detect("detect_standards_duration_s", int, 1800,
            "How long DO must stay below a standard's threshold before low_do / black_odorous."),
    _detect("detect_low_battery_v", float, 3.5,
            "low_battery below this voltage (packs above 6 V: 85 % of the node's own maximum)."),
    # -- web -------------------------------------------------------------------------------
    _web("web_host", str, "127.0.0.1", "Address the panel listens on."),
    _web("web_port", int, 8080, "Port the panel listens on."),
    _web("web_public_view", bool, False, "Let anonymous visitors see the creek view read-only."),
    _web("secret_key", str, "",
         "Flask session secret; empty means one is generated and kept in VAR/secret_key."),
    _web("web_cookie_secure", bool, True,
         "Mark session cookies Secure (HTTPS only; browsers also accept them on http://localhost). "
         "Turn off only behind plain HTTP on a closed network."),
    _web("web_offline_after_s", int, 900,
         "A segment whose newest reading is older than this many seconds shows as offline."),
    _web("web_refresh_s", float, 2.0,
         "How often the panel recomputes segment status and pushes changes to open pages (SSE)."),
    _web("web_login_attempts", int, 10,
         "Failed logins allowed per client address (and per user name) in 5 minutes before 429."),
    _web("web_agg_interval_s", int, 300,
         "How often `rivermon web` updates its hourly aggregates (telemetry_1h); 0 turns it off."),
    _web("web_agg_lookback_h", int, 48,
         "Hours of raw data re-aggregated on every run, so late backlogs reach the aggregates."),
    _web("web_agg_backfill_days", int, 400,
         "On first run, how far back the hourly aggregates are built."),
    # -- sim -------------------------------------------------------------------------------
    _sim("sim_seed", int, 1, "Random seed of the simulated creek."),
    _sim("sim_speed", float, 1.0, "Simulated seconds per real second (1 = real time)."),
    _sim("sim_interval_s", float, 60.0, "Sampling interval of simulated nodes, seconds."),
    _sim("sim_scenario", str, "demo",
         "Scenario of `rivermon sim` when --scenario is not given: a shipped name or a TOML file."),
    _sim("sim_truth", str, "",
         "Append the simulator's ground truth (JSON lines) to this file; empty means none."),
    # -- notify ----------------------------------------------------------------------------
    _notify("notify_client_id", str, "rivermon-notify",
            "MQTT client id of the notifier (persistent session key; unique per notifier)."),
    _notify("notify_session_expiry_s", int, 7 * 24 * 3600,
            "MQTT v5 session expiry: how long the broker keeps the notifier's queue while it is down."),
    _notify("notify_routes", str, "",
            "Routes TOML file (targets and routes, see docs/notify.md); empty means alert events "
            "are recorded in the outbox but sent nowhere."),
    _notify("notify_panel_url", str, "http://127.0.0.1:8080",
            "Panel base URL for the link in every message ({panel}/alerts/{id})."),
    _notify("notify_remind_s", float, 1800.0,
            "Remind every this many seconds while an alert stays open (unacknowledged); "
            "0 turns reminders off. A route may override it."),
    _notify("notify_escalate_s", float, 3600.0,
            "A critical alert still unacknowledged this many seconds after it became critical "
            "goes to its route's escalate_to targets; 0 turns escalation off. A route may override it."),
    _notify("notify_quiet_hours", str, "",
            "Quiet hours HH:MM-HH:MM (local time of `timezone`): non-critical messages are held and "
            "sent as one digest when they end; empty means none. A route may override it."),
    _notify("notify_retry_base_s", float, 2.0,
            "First retry delay of a failed delivery; doubles per attempt up to notify_retry_max_s."),
    _notify("notify_retry_max_s", float, 300.0,
            "Longest delay between retries; deliveries are retried until they succeed."),
    _notify("notify_http_timeout_s", float, 10.0, "Timeout of one webhook request, seconds."),
    _notify("notify_alert_store", bool, True,
            "Before a reminder or escalation, also read the alert's state from VAR/alerts.sqlite "
            "when it exists (model on the same machine)."),
    _notify("notify_keep_days", int, 30,
            "Delivered messages and processed events older than this are pruned from the outbox."),
    # -- control (aeration) -----------------------------------------------------------------
    _control("control_client_id", str, "rivermon-control",
             "MQTT client id of the aeration controller (`rivermon control`)."),
    _control("control_on_below_mg_l", float, 4.5,
             "Daytime: a segment's aerators switch on when its DO falls below this (mg/L)."),
    _control("control_off_above_mg_l", float, 6.0,
             "Daytime: they switch off again when DO reaches this (mg/L; hysteresis above the on point)."),
    _control("control_night_comfort_mg_l", float, 7.0,
             "Night rule: from dusk to dawn aerators run unless the segment's DO is at least this (mg/L)."),
    _control("control_min_on_s", float, 1800.0,
             "Minimum running time of an aerator once switched on (seconds; spares the motor)."),
    _control("control_min_off_s", float, 900.0,
             "Minimum rest of an aerator once switched off (seconds)."),
    _control("control_falling_mg_l_h", float, 1.0,
             "Daytime: switch on early when DO (below the off point) falls faster than this "
             "(mg/L per hour over the last half hour; a discharge plume); 0 turns it off."),
    _control("control_night", str, "solar",
             "When night is: 'solar' (sunset to sunrise at the creek, from a solar calculation) or "
             "fixed local times 'HH:MM-HH:MM' (e.g. '18:30-06:30')."),
    _control("control_fountain_hours", str, "08:00-10:00,19:00-21:00",
             "Local hours fountains run for daytime flow and looks, whatever the DO "
             "('HH:MM-HH:MM,...'; empty: fountains follow DO like the micro-pore grids)."),
    _control("control_stale_s", float, 900.0,
             "A sensor's DO older than this (seconds) is unknown; a segment without a usable DO "
             "runs on schedule (night aeration, fountain hours)."),
    _control("control_confirm_s", float, 60.0,
             "An aerator that does not confirm a command (aerator_on in its telemetry) within this "
             "many seconds raises an aerator_fault alert."),
    _control("control_min_power_frac", float, 0.1,
             "A confirmed 'on' drawing less than this fraction of rated power raises an aerator_fault."),
    _control("control_tick_s", float, 5.0,
             "How often (wall-clock seconds) the controller decides and checks confirmations."),
    _control("control_dry_run", bool, False,
             "Decide and log (command log mode 'dry-run') but publish no command."),
    # -- up --------------------------------------------------------------------------------
    _up("up_broker_port", int, 0, "Port for the broker `rivermon up` starts (0 = a free one)."),
    _up("up_influx_port", int, 0, "Port for the InfluxDB `rivermon up` starts (0 = a free one)."),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    """Turn a raw value (TOML or environment string) into the setting's type."""
    if setting.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{origin}: {setting.name} must be true or false, got {value!r}")
    if setting.type in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{origin}: {setting.name} must be a number, got {value!r}")
        try:
            return setting.type(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{origin}: {setting.name} must be {'an integer' if setting.type is int else 'a number'}"
                f", got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {setting.name} must be a string, got {value!r}")
    return value


class Config(Mapping[str, Any]):
    """Resolved settings; read as ``cfg.broker`` or ``cfg["broker"]``."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> "Config":
        unknown = set(changes) - set(BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Config({**self._values, **changes})

    @property
    def var_path(self) -> Path:
        return Path(self.var)


def load_config(
    file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults, then the TOML ``file`` (or ``$RIVERMON_CONFIG``), then ``RIVERMON_*``, then ``overrides``."""
    env = os.environ if env is None else env
    values = {s.name: s.default for s in SETTINGS}
    file = file or env.get(ENV_PREFIX + "CONFIG") or None
    if file:
        path = Path(file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for key, raw in _flatten(data):
            if key not in BY_NAME:
                raise ConfigError(f"{path}: unknown key {key!r} (see `rivermon config`)")
            values[key] = _coerce(BY_NAME[key], raw, str(path))
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], setting.env)
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in BY_NAME:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(BY_NAME[key], raw, "--" + key.replace("_", "-"))
    return Config(values)


def _flatten(data: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """Accept both flat keys and one level of [section] tables (``[ingest] batch_size``)."""
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat = sub if sub in BY_NAME else f"{key}_{sub}"
                yield flat, subvalue
        else:
            yield key, value


def render_markdown() -> str:
    """The configuration reference, generated from :data:`SETTINGS`."""
    lines = [
        "# Configuration",
        "",
        "Generated from `core/config.py` by `rivermon config --markdown`; a test keeps them equal.",
        "",
        "Precedence, lowest first: the default; the TOML file given by `--config FILE` or",
        "`RIVERMON_CONFIG` (flat keys, or `[section]` tables whose keys drop the section prefix);",
        "the `RIVERMON_<KEY>` environment variable; the command-line flag `--<key>` where the",
        "command has one.",
        "",
    ]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += [f"## {section}", "", "| key | type | default | environment | meaning |",
                      "|---|---|---|---|---|"]
        default = repr(s.default) if s.type is str else str(s.default).lower() if s.type is bool else s.default
        lines.append(f"| `{s.name}` | {s.type.__name__} | `{default}` | `{s.env}` | {s.help} |")
        nxt = SETTINGS.index(s) + 1
        if nxt == len(SETTINGS) or SETTINGS[nxt].section != section:
            lines.append("")
    return "\n".join(lines)
