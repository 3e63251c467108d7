"""Issue 16, point 6: a bad station.toml or a store the station cannot use ends the command with
one line and its documented exit code (README: Exit codes), never a traceback."""

from __future__ import annotations

from formstation import demo
from formstation.cli import main
from formstation.errors import ExitCode


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_bad_station_toml_names_the_file_and_exits_7(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main([*ws, "roster", "import", str(demo.write_roster(tmp_path / "r.csv", seed=1, per_class=1))]) == 0
    (tmp_path / "ws" / "station.toml").write_text("[thresholds]\nphone = 7\n", encoding="utf-8")
    capsys.readouterr()
    code = main([*ws, "print", "--out", str(tmp_path / "print"), "--campaign-date", "2026-09-01"])
    line = _one_line(capsys)
    assert code == ExitCode.CONFIG == 7 and "station.toml" in line and "thresholds.phone" in line
    (tmp_path / "ws" / "station.toml").write_text("not = [toml", encoding="utf-8")
    assert main([*ws, "print", "--out", str(tmp_path / "print"), "--campaign-date", "2026-09-01"]) == 7
    assert "not valid TOML" in _one_line(capsys)


def test_an_unreachable_database_server_exits_5_without_its_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://station:s3cret-pw@127.0.0.1:1/formstation")
    code = main(["--workspace", str(tmp_path / "ws"), "export", "--out", str(tmp_path / "out")])
    line = _one_line(capsys)
    assert code == ExitCode.STORE == 5 and "store cannot be used" in line and "s3cret-pw" not in line
