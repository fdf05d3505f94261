"""`raftkv serve` settings: flags over RAFTKV_* variables over a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from raftkv.cli import ConfigFileError, _parser, settings_from


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return _parser().parse_args(["serve", *argv])


def test_toml_file_env_and_flags_layer_in_that_order(tmp_path: Path) -> None:
    cfg = tmp_path / "n1.toml"
    cfg.write_text(
        'name = "from-file"\ndata_dir = "/tmp/file"\ntick_ms = 50\n'
        'client_url = "http://127.0.0.1:3000"\n'
    )
    s = settings_from(_args("--config", str(cfg)), {})
    assert (s.name, s.tick_ms, s.client_url) == ("from-file", 50, "http://127.0.0.1:3000")
    s = settings_from(_args("--config", str(cfg)), {"RAFTKV_TICK_MS": "20"})
    assert s.tick_ms == 20 and s.name == "from-file"
    s = settings_from(_args("--config", str(cfg), "--tick-ms", "10"), {"RAFTKV_TICK_MS": "20"})
    assert s.tick_ms == 10
    s = settings_from(_args(), {"RAFTKV_CONFIG": str(cfg)})
    assert s.name == "from-file"


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read config file"):
        settings_from(_args("--config", str(tmp_path / "missing.toml")), {})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigFileError):
        settings_from(_args("--config", str(bad)), {})


def test_unknown_and_invalid_values_are_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "n1"\ndata_dir = "/tmp/x"\nbogus = 1\n')
    with pytest.raises(ValidationError, match="bogus"):
        settings_from(_args("--config", str(cfg)), {})
    with pytest.raises(ValidationError, match="http://host:port"):
        settings_from(_args("--name", "n1", "--data-dir", "/x", "--client-url", "ftp://x"), {})
