"""`lianhu org check` validates the alert mapping and the Open311 clients file too."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import ROOT, RULES_DIR

SAMPLE = ROOT / "org" / "sample_street.yaml"
ALERTS = ROOT / "org" / "sample_alerts.yaml"
CLIENTS = ROOT / "org" / "sample_open311.yaml"


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIANHU_ALERTS_FILE", "LIANHU_OPEN311_CLIENTS", "LIANHU_ALERTS_SECRET"):
        monkeypatch.delenv(name, raising=False)


def check(*extra: str) -> int:
    return main(["org", "check", str(SAMPLE), "--rules", str(RULES_DIR), *extra])


def test_the_samples_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert check("--alerts", str(ALERTS), "--open311", str(CLIENTS)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{SAMPLE}: 27 nodes, 45 people",
        f"{ALERTS}: 4 alert routes",
        f"{CLIENTS}: 1 Open311 clients",
    ]


def test_errors_of_both_files_are_located_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text("routes:\n  - match: {a: b}\n    node: X-99\n    category: utilities\n")
    clients = tmp_path / "clients.yaml"
    clients.write_text('clients:\n  - name: hotline\n    key: "short"\n')
    assert check("--alerts", str(alerts), "--open311", str(clients)) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == ""
    assert f"{alerts}:3:5: routes[0].node: no place 'X-99'" in err
    assert f"{alerts}: 1 error" in err
    assert any(line.startswith(f"{clients}:3:5: clients[0].key: ") for line in err), err
    assert f"{clients}: 1 error" in err
    # A file of the right shape is checked against the tree: a place that is not there.
    clients.write_text('clients:\n  - name: app\n    key: "a-long-enough-key-for-the-app-01"\n'
                       "    node: V-09\n")  # fmt: skip
    assert check("--open311", str(clients)) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{clients}:4:5: clients[0].node: no place 'V-09'",
        f"{clients}: 1 error",
    ]


def test_the_settings_name_the_files_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("routes: []\n")
    monkeypatch.setenv("LIANHU_ALERTS_FILE", str(bad))
    monkeypatch.setenv("LIANHU_OPEN311_CLIENTS", str(CLIENTS))
    assert check() == 1
    assert f"{bad}:1:1: routes: List should have at least 1 item" in capsys.readouterr().err
    monkeypatch.setenv("LIANHU_ALERTS_FILE", str(ALERTS))
    assert check() == 0
    assert f"{CLIENTS}: 1 Open311 clients" in capsys.readouterr().out


def test_a_missing_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert check("--open311", str(missing)) == 1
    assert capsys.readouterr().err.startswith(f"{missing}:1:1: -: cannot read:")


def test_the_alert_mapping_needs_the_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIANHU_RULES_DIR", str(tmp_path / "none"))  # no rules to check against
    assert main(["org", "check", str(SAMPLE), "--alerts", str(ALERTS)]) == 1
    assert capsys.readouterr().err == (
        f"{ALERTS}: checking the alert mapping needs the rules (--rules DIR)\n"
    )
