"""The operator command line (issue 6): every command is there and says in plain words what it does."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import app

# What the issue asks an operator to be able to run, as `jianfei ...` (reminders: its own change).
COMMANDS = {
    ("serve",): "serve the API",
    ("migrate",): "database schema",
    ("create-admin",): "platform admin",
    ("import-roster",): "roster",
    ("labels",): "labels",
    ("ledger", "expire"): "expiry",
    ("ledger", "verify"): "balance",
    ("reports", "export-totals"): "point totals",
    ("generate-demo",): "demo street",
    ("fake-wechat",): "fake WeChat server",
}


def _help(*words: str) -> str:
    r = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    return r.output


def test_the_top_level_help_lists_every_operator_command():
    top = _help()
    for words in COMMANDS:
        assert f" {words[0]} " in top, words


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_each_command_says_what_it_does(words):
    text = _help(*words)
    assert COMMANDS[words].lower() in " ".join(text.split()).lower(), text
