"""`jianfei import-roster`: the same import from the command line, with its exit codes and error file."""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from app.cli import app


def _write(tmp_path, rows, name="roster.csv", encoding="gbk"):
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path = tmp_path / name
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def _plates(client, world):
    items = client.get(
        f"/api/v1/communities/{world.community.id}/households", params={"limit": 200}, headers=world.h("committee")
    ).json()["items"]
    return {(h["building_name"], h["unit"], h["door_plate"]): h for h in items}


def test_cli_checks_then_imports_and_writes_the_error_file(client, world, tmp_path):
    path = _write(tmp_path, [["楼栋", "单元", "门牌", "人数"], ["1号楼", "4", "101", "2"], ["1号楼", "4", "", "2"]])
    runner = CliRunner()
    dry = runner.invoke(app, ["import-roster", str(path), "--community", str(world.community.id)])
    assert dry.exit_code == 1, dry.output
    assert "缺少门牌号" in dry.output and "nothing was stored" in dry.output
    assert ("1号楼", "4", "101") not in _plates(client, world)

    errors = tmp_path / "problems.csv"
    done = runner.invoke(
        app,
        ["import-roster", str(path), "-c", str(world.community.id), "--mode", "valid_rows", "--errors", str(errors), "--english"],
    )
    assert done.exit_code == 1, done.output
    assert "Door plate is missing" in done.output and "Imported" in done.output
    assert ("1号楼", "4", "101") in _plates(client, world)
    assert errors.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "Door plate is missing" in errors.read_text(encoding="utf-8-sig")

    clean = _write(tmp_path, [["楼栋", "单元", "门牌", "人数"], ["1号楼", "4", "101", "4"]], name="clean.csv")
    again = runner.invoke(app, ["import-roster", str(clean), "-c", str(world.community.id), "-m", "all_or_nothing"])
    assert again.exit_code == 0, again.output
    assert _plates(client, world)[("1号楼", "4", "101")]["members"] == 4
    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    assert any(a["action"] == "roster.import" and a["detail"]["via"] == "cli" for a in audit)


def test_cli_unreadable_file_and_bad_mode(world, tmp_path):
    path = _write(tmp_path, [["x", "y"]])
    r = CliRunner().invoke(app, ["import-roster", str(path), "-c", str(world.community.id)])
    assert r.exit_code == 2 and "楼栋" in r.output
    r = CliRunner().invoke(app, ["import-roster", str(path), "-c", str(world.community.id), "--mode", "yolo"])
    assert r.exit_code == 2 and "dry_run" in r.output
