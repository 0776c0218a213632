"""One email path: every email is a row of the outbox (notification_deliveries), sent after its
transaction commits by the outbox's sender (jobs/reminders.py send_notifications), with the
outbox's claim, commit point and retries. Nothing else speaks SMTP: the weekly summaries' notice
once had a client of its own, which sent from inside the job and retried only at its next run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The SMTP client lives in the outbox's email channel, and only the sender opens and uses it.
CHANNEL = "api/notifications/channels.py"
SENDER = "jobs/reminders.py"
SMTP_MODULES = {"smtplib", "aiosmtplib", "flask_mail", "flask_mailman"}
# Names of the channel module that send (or build what sends): for the sender only.
SENDING_NAMES = {"EmailChannel", "EmailSettings", "email_settings", "deliver"}


def _uses(path: Path) -> list[tuple[str, int]]:
    """(what, line) of every SMTP import and every sending name taken from the channel module."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in SMTP_MODULES:
                    found.append((alias.name, node.lineno))
                if alias.name == "api.notifications.channels":
                    found.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in SMTP_MODULES:
                found.append((node.module, node.lineno))
            elif node.module == "api.notifications.channels":
                found += [(a.name, node.lineno) for a in node.names if a.name in SENDING_NAMES]
            elif node.module == "api.notifications":
                found += [(a.name, node.lineno) for a in node.names if a.name == "channels"]
    return found


def offenders(root: Path) -> list[str]:
    problems = []
    for package in ("api", "jobs"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == CHANNEL:
                continue
            for what, line in _uses(path):
                if rel == SENDER and what not in SMTP_MODULES:
                    continue  # the sender takes the channel; it never imports SMTP itself
                problems.append(f"{rel}:{line} ({what})")
    return problems


def test_only_the_outbox_sender_sends_email() -> None:
    assert offenders(ROOT) == []


def test_the_sender_and_the_channel_are_where_this_test_says() -> None:
    """If they moved, the scan above would be checking the wrong files."""
    assert "smtplib" in {what for what, _ in _uses(ROOT / CHANNEL)}
    assert {"EmailChannel", "deliver"} <= {what for what, _ in _uses(ROOT / SENDER)}


def test_an_email_sent_outside_the_outbox_is_found(tmp_path: Path) -> None:
    for folder in ("api/notifications", "api/summaries", "jobs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / CHANNEL).write_text("import smtplib\n\nclass EmailChannel: ...\n")
    (tmp_path / SENDER).write_text(
        "from api.notifications.channels import EmailChannel, LinkSettings, deliver\n"
    )
    (tmp_path / "jobs" / "weekly_summaries.py").write_text(
        "from api.notifications.channels import EmailChannel, email_settings\n"
    )
    (tmp_path / "api" / "summaries" / "services.py").write_text(
        "from api.notifications.channels import LinkSettings\n\n\n"
        "def notify(to):\n    import smtplib\n    smtplib.SMTP('mx').sendmail('a', to, 'x')\n"
    )
    (tmp_path / "jobs" / "digest.py").write_text("from email import message\nimport aiosmtplib\n")
    assert offenders(tmp_path) == [
        "api/summaries/services.py:5 (smtplib)",
        "jobs/digest.py:2 (aiosmtplib)",
        "jobs/weekly_summaries.py:1 (EmailChannel)",
        "jobs/weekly_summaries.py:1 (email_settings)",
    ]
