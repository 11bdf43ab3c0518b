"""Settings are declared once; loading follows the documented precedence."""

from pathlib import Path

import pytest

from rivermon.core.config import SETTINGS, ConfigError, load_config, render_markdown

REPO = Path(__file__).resolve().parent.parent


def test_configuration_doc_is_generated_from_the_declarations():
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc.strip() == render_markdown().strip(), \
        "docs/configuration.md is stale: run `rivermon config --markdown > docs/configuration.md`"
    for s in SETTINGS:
        assert f"`{s.name}`" in doc and s.env in doc


def test_precedence_default_file_env_flag(tmp_path):
    f = tmp_path / "rivermon.toml"
    f.write_text('influx_db = "fromfile"\n[web]\nport = 9001\n')
    assert load_config(env={}).influx_db == "rivermon"
    assert load_config(f, env={}).influx_db == "fromfile"
    assert load_config(f, env={}).web_port == 9001
    cfg = load_config(f, env={"RIVERMON_INFLUX_DB": "fromenv", "RIVERMON_WEB_PORT": "9002"})
    assert (cfg.influx_db, cfg.web_port) == ("fromenv", 9002)
    cfg = load_config(f, env={"RIVERMON_INFLUX_DB": "fromenv"}, overrides={"influx_db": "fromflag"})
    assert cfg.influx_db == "fromflag"


def test_config_errors_name_the_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("no_such_key = 1\n")
    with pytest.raises(ConfigError, match="no_such_key"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="RIVERMON_WEB_PORT.*integer"):
        load_config(env={"RIVERMON_WEB_PORT": "eighty"})
    with pytest.raises(ConfigError, match="web_public_view"):
        load_config(env={"RIVERMON_WEB_PUBLIC_VIEW": "maybe"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
