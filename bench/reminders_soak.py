"""Soak: two scheduler processes, one PostgreSQL, a real SMTP server, local push providers
(FCM v1 behind its OAuth token endpoint, Web Push), SIGKILLs, a DST change.

    .venv/bin/python -m bench.reminders_soak --minutes 10 --transition spring
    .venv/bin/python -m bench.reminders_soak --minutes 3 --transition fall --kills 3

What it does:
- makes a throwaway PostgreSQL database (migrated) and starts an aiosmtpd server (127.0.0.1:8325)
  and the push providers of tests/push_servers.py (FCM v1 with its OAuth token endpoint, a Web
  Push service that checks VAPID and decrypts each payload), on ports in 9400-9449;
- creates users with email + push check-in reminders at local times spread over the simulated
  window, each with one device (android and ios through FCM, web through Web Push), in
  America/New_York (whose DST change is inside the window), Europe/London and UTC; some users have
  quiet hours that end inside the window;
- starts two `python -m jobs` processes (the real scheduler: advisory-lock leadership, dispatcher,
  sender) whose `now` is a fast clock: simulated time = SIM_START + (real elapsed) * speed, so a
  10-minute run covers 2 hours of simulated time around the transition. APScheduler itself ticks
  in real time (dispatch every second = every `speed` simulated seconds);
- SIGKILLs the current leader `--kills` times at random moments and starts a replacement;
- at the end checks, against an oracle that shares no code with the service (a minute-by-minute
  scan of wall-clock readings), that every reminder due in the window was queued exactly once,
  that every email and push delivery is `sent`, that the SMTP server received exactly one message
  per email delivery (by Message-ID) and the push providers exactly one push per push delivery
  (by device and notification id), and nothing else.

Exit status 0 when every check passes. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.orm import sessionmaker

from bench.reminders_dispatch import create_database, drop_database
from tests.push_servers import FcmLog, WebPushLog, start_fcm, start_webpush

ROOT = Path(__file__).resolve().parent.parent
TRANSITIONS = {
    # America/New_York 2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC: 02:00-02:59 do not exist
    "spring": datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    # America/New_York 2026-11-01 02:00 EDT -> 01:00 EST at 06:00 UTC: 01:00-01:59 happen twice
    "fall": datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
}
ZONES = ["America/New_York", "America/New_York", "America/New_York", "Europe/London", "UTC"]
MINUTE = timedelta(minutes=1)


# ------------------------------------------------------------------------------------ worker


def worker() -> None:
    """A scheduler process on the fast clock (run as a child with --worker)."""
    epoch = float(os.environ["SOAK_EPOCH"])
    sim_start = datetime.fromisoformat(os.environ["SOAK_SIM_START"])
    speed = float(os.environ["SOAK_SPEED"])

    def fast_now() -> datetime:
        return sim_start + timedelta(seconds=(time.time() - epoch) * speed)

    import api.db
    import jobs.__main__ as scheduler

    api.db.utcnow = fast_now  # type: ignore[assignment]
    scheduler.utcnow = fast_now  # type: ignore[assignment]
    scheduler.main()


# ------------------------------------------------------------------------------------ SMTP


@dataclass
class Mailbox:
    delay: float = 0.0  # how long the server takes to accept a message (seconds)
    ids: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    subjects: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        # The whole message is here (end-of-data seen): from now on it is delivered, whatever
        # happens to the client. A slow server widens the window a crash can fall into.
        await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content)
        with self.lock:
            self.ids.append(str(message["Message-ID"]))
            self.recipients.extend(envelope.rcpt_tos)
            self.subjects[str(message["Subject"])] += 1
        return "250 OK"


# ------------------------------------------------------------------------------------ oracle


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def oracle_fire(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """First whole UTC minute whose wall reading is at or after `day hhmm` (the policy)."""
    target = datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time())  # noqa: DTZ007
    u = target.replace(tzinfo=UTC) - timedelta(hours=15)
    while wall(u, zone) < target:
        u += MINUTE
    return u


def oracle_hold(instant: datetime, zone: ZoneInfo, quiet: tuple[str, str] | None) -> datetime:
    if quiet is None:
        return instant
    start, end = (datetime.strptime(q, "%H:%M").time() for q in quiet)  # noqa: DTZ007

    def is_quiet(u: datetime) -> bool:
        t = wall(u, zone).time()
        return start <= t < end if start < end else (t >= start or t < end)

    u = instant
    while is_quiet(u):
        u = (u + MINUTE).replace(second=0)
    return u


# ------------------------------------------------------------------------------------ set-up


@dataclass
class Plan:
    rule_user: dict[uuid.UUID, uuid.UUID]
    expected: set[tuple[uuid.UUID, datetime]]
    emails: dict[uuid.UUID, str]


PLATFORMS = ("android", "ios", "web")


def seed(
    url: str,
    *,
    sim_start: datetime,
    sim_end: datetime,
    users: int,
    gap: bool,
    webpush: WebPushLog | None = None,
) -> Plan:
    """Users with one email + push check-in reminder each, at local times across the window, and
    one device each (with `webpush`; without it no push)."""
    import api.all_models  # noqa: F401
    from api.auth.models import User
    from api.db import make_engine
    from api.devices.services import register_device
    from api.reminders import services

    engine = make_engine(url)
    make = sessionmaker(bind=engine, expire_on_commit=False)
    plan = Plan(rule_user={}, expected=set(), emails={})
    span = (sim_end - sim_start).total_seconds() / 60
    with make() as session:
        for n in range(users):
            zone_name = ZONES[n % len(ZONES)]
            zone = ZoneInfo(zone_name)
            # a local time inside the window (for New York, some of them inside the DST jump)
            offset = timedelta(minutes=2 + (span - 6) * n / users)
            local = wall(sim_start + offset, zone)
            if gap and zone_name == "America/New_York" and n % 9 == 0:
                local = local.replace(hour=2)  # the hour that does not exist that night
            hhmm = local.strftime("%H:%M")
            quiet = None
            if n % 5 == 1:
                end = wall(sim_start + timedelta(minutes=span / 2), zone).strftime("%H:%M")
                quiet = ("00:00", end) if end != "00:00" else None
            user = User(
                email=f"soak{n}@waymark.test",
                password_hash="x",  # noqa: S106 - nobody signs in
                display_name=f"S{n}",
                timezone=zone_name,
                quiet_hours_start=quiet[0] if quiet else None,
                quiet_hours_end=quiet[1] if quiet else None,
                discreet_notifications=n % 4 == 0,
            )
            session.add(user)
            session.flush()
            channels = ["email", "inbox"]
            if webpush is not None:
                channels.append("push")
                platform = PLATFORMS[n % len(PLATFORMS)]
                body: dict[str, Any] = {"platform": platform}
                if platform == "web":
                    body["subscription"] = webpush.subscribe("ok").json()
                else:
                    body["token"] = f"ok-soak-{platform}-{n}"
                register_device(session, user_id=user.id, body=body, now=sim_start)
            rule, _ = services.create_rule(
                session,
                user=user,
                body={"kind": "checkin", "local_time": hhmm, "channels": channels},
                now=sim_start,
            )
            plan.rule_user[rule.id] = user.id
            plan.emails[user.id] = user.email
            # what the oracle says is owed in (sim_start, sim_end]
            first = wall(sim_start, zone).date() - timedelta(days=1)
            for k in range(4):
                fire = oracle_fire(first + timedelta(days=k), hhmm, zone)
                held = oracle_hold(fire, zone, quiet)
                if sim_start < held <= sim_end:
                    plan.expected.add((rule.id, fire))
        session.commit()
    engine.dispose()
    return plan


# ------------------------------------------------------------------------------------ run


def spawn(url: str, env: dict[str, str], logdir: Path, n: int) -> subprocess.Popen[bytes]:
    out = open(logdir / f"worker-{n}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "bench.reminders_soak", "--worker"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": url},
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def leader_pid(engine: sa.Engine) -> int | None:
    with engine.connect() as conn:
        rows: list[str] = list(
            conn.execute(
                sa.text("SELECT instance FROM scheduler_heartbeats WHERE is_leader")
            ).scalars()
        )
        pids = [int(instance.rsplit(":", 1)[1]) for instance in rows]
    return pids[0] if len(pids) == 1 else None


def wait_for_work(
    engine: sa.Engine,
    epoch: float,
    sim_start: datetime,
    speed: float,
    *,
    seconds: float,
    target: str,
) -> str | None:
    """Poll until a delivery is being sent ("sending") or a rule is due ("due_rules");
    return the target, or None when it did not happen within `seconds`."""
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if target == "sending":
                found = conn.scalar(
                    sa.text("SELECT count(*) FROM notification_deliveries WHERE status = 'sending'")
                )
            else:
                sim_now = sim_start + timedelta(seconds=(time.time() - epoch) * speed)
                found = conn.scalar(
                    sa.text("SELECT count(*) FROM reminder_rules WHERE next_fire_at <= :now"),
                    {"now": sim_now},
                )
            conn.rollback()
            if found:
                return target
            time.sleep(0.002)
    return None


def main() -> int:  # noqa: PLR0912, PLR0915 - one script, top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--minutes", type=float, default=10.0, help="real minutes of the run")
    parser.add_argument("--transition", choices=sorted(TRANSITIONS), default="spring")
    parser.add_argument("--speed", type=float, default=12.0, help="simulated seconds per second")
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--smtp-port", type=int, default=8325)
    parser.add_argument("--smtp-delay", type=float, default=0.05, help="seconds to accept")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-push", action="store_true", help="email and inbox only")
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = parser.parse_args()
    if args.worker:
        worker()
        return 0

    rng = random.Random(args.seed)
    run_seconds = args.minutes * 60
    drain_seconds = 25.0
    # The simulated window is centred on the transition. Rules fall due up to 30 real seconds
    # before the kills stop; the drain sends the rest.
    window = timedelta(seconds=(run_seconds - 30) * args.speed)
    sim_start = TRANSITIONS[args.transition] - window / 2
    sim_end = sim_start + window
    url = create_database(args.pg_url)
    logdir = Path(tempfile.mkdtemp(prefix="waymark-soak-"))
    mailbox = Mailbox(delay=args.smtp_delay)
    smtp = Controller(mailbox, hostname="127.0.0.1", port=args.smtp_port)
    smtp.start()
    push = None if args.no_push else start_push_providers()
    procs: list[subprocess.Popen[bytes]] = []
    engine = sa.create_engine(url)
    report: dict[str, Any] = {
        "transition": args.transition,
        "sim_window": [sim_start.isoformat(), sim_end.isoformat()],
        "speed": args.speed,
        "real_minutes": args.minutes,
    }
    try:
        plan = seed(
            url,
            sim_start=sim_start,
            sim_end=sim_end,
            users=args.users,
            gap=args.transition == "spring",
            webpush=push.webpush if push else None,
        )
        report["rules"] = len(plan.rule_user)
        report["expected_reminders"] = len(plan.expected)
        epoch = time.time()
        env = {
            **os.environ,
            "SOAK_EPOCH": repr(epoch),
            "SOAK_SIM_START": sim_start.isoformat(),
            "SOAK_SPEED": str(args.speed),
            "SECRET_KEY": "soak-" + "x" * 40,
            "WAYMARK_INSTANCE_DIR": str(logdir),
            "SMTP_PORT": str(args.smtp_port),
            "PUBLIC_BASE_URL": "https://app.waymark.test",
            "LOG_LEVEL": "INFO",
            "DISPATCH_INTERVAL": "1",
            "SEND_INTERVAL": "1",
            "HEARTBEAT_INTERVAL": "1",
            "SCHEDULER_LEADER_RETRY": "2",
            "DISPATCH_BATCH_SIZE": "50",
            "SEND_BATCH_SIZE": "10",
            # simulated seconds (the jobs' clock): a claim dead with its sender is retried
            # after 5 real seconds
            "DELIVERY_LEASE": str(int(5 * args.speed)),
            "DELIVERY_BACKOFF_BASE": str(int(2 * args.speed)),
            "REMINDER_GRACE_MINUTES": "30",
            **(push.env if push else {}),
        }
        procs = [spawn(url, env, logdir, n) for n in range(2)]
        # spread over the run, each at a random moment of its slot
        slot = (run_seconds - 50) / max(args.kills, 1)
        kill_at = [10 + slot * (k + rng.uniform(0.1, 0.9)) for k in range(args.kills)]
        kills: list[dict[str, Any]] = []
        started = time.monotonic()
        while time.monotonic() - started < run_seconds:
            if kill_at and time.monotonic() - started >= kill_at[0]:
                kill_at.pop(0)
                victim = None
                for _ in range(50):  # a leader that just took over may not have beaten yet
                    pid = leader_pid(engine)
                    victim = next((p for p in procs if p.pid == pid and p.poll() is None), None)
                    if victim is not None:
                        break
                    time.sleep(0.2)
                if victim is None:
                    kills.append(
                        {
                            "skipped": "no live leader",
                            "real_s": round(time.monotonic() - started, 1),
                        }
                    )
                    continue
                # Aim at work in flight: alternately a delivery being sent, or rules due.
                target = "sending" if len(kills) % 2 == 0 else "due_rules"
                in_flight = wait_for_work(
                    engine, epoch, sim_start, args.speed, seconds=10, target=target
                )
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                procs.remove(victim)
                procs.append(spawn(url, env, logdir, len(kills) + 2))
                sim = sim_start + timedelta(seconds=(time.time() - epoch) * args.speed)
                kills.append(
                    {
                        "pid": pid,
                        "real_s": round(time.monotonic() - started, 1),
                        "sim": sim.isoformat(timespec="seconds"),
                        "in_flight": in_flight,
                    }
                )
            time.sleep(0.2)
        time.sleep(drain_seconds)
        report["kills"] = kills
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        report.update(check(engine, plan, mailbox, push))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        smtp.stop()
        if push is not None:
            push.stop()
        engine.dispose()
        if not args.keep:
            drop_database(args.pg_url, url)
        report["logs"] = str(logdir)
    print(json.dumps(report, indent=2, default=str))
    return 0 if report.get("ok") else 1


@dataclass
class PushProviders:
    fcm: FcmLog
    webpush: WebPushLog
    env: dict[str, str]
    servers: list[Any]

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def start_push_providers() -> PushProviders:
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid02
    from py_vapid.utils import b64urlencode

    fcm = FcmLog()
    fcm_server, fcm_port = start_fcm(fcm)
    vapid = Vapid02()
    vapid.generate_keys()
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    webpush = WebPushLog(vapid_public_key=b64urlencode(public))
    webpush_server, _ = start_webpush(webpush)
    assert fcm.account is not None
    env = {
        "FCM_SERVICE_ACCOUNT": json.dumps(fcm.account.info),
        "FCM_BASE_URL": f"http://127.0.0.1:{fcm_port}",
        "VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
        "VAPID_SUBJECT": "mailto:soak@waymark.test",
        "WEBPUSH_ENDPOINT_ORIGINS": "http://127.0.0.1",
    }
    return PushProviders(fcm=fcm, webpush=webpush, env=env, servers=[fcm_server, webpush_server])


def check_push(conn: sa.Connection, push: PushProviders) -> dict[str, Any]:
    """Each push delivery reached its provider exactly once (by device and notification)."""
    rows = conn.execute(
        sa.text(
            "SELECT d.notification_id, d.status, v.platform, v.token "
            "FROM notification_deliveries d JOIN devices v ON v.id = d.device_id "
            "WHERE d.channel = 'push'"
        )
    ).all()
    expected_fcm = {(r.token, str(r.notification_id)) for r in rows if r.platform != "web"}
    expected_web = {
        (r.token.rsplit("/", 1)[1], str(r.notification_id)) for r in rows if r.platform == "web"
    }
    got_fcm = Counter(
        (r["message"]["token"], r["message"]["data"]["notification_id"]) for r in push.fcm.requests
    )
    got_web = Counter((m["subscription"], m["notification_id"]) for m in push.webpush.messages)
    statuses = Counter(r.status for r in rows)
    return {
        "checks": {
            "every_push_delivery_sent": statuses.get("sent", 0) == len(rows) > 0,
            "fcm_got_each_push_once": set(got_fcm) == expected_fcm
            and all(n == 1 for n in got_fcm.values()),
            "webpush_got_each_push_once": set(got_web) == expected_web
            and all(n == 1 for n in got_web.values()),
            "fcm_messages_well_formed": not any(push.fcm.shape_errors),
            "webpush_vapid_and_decryption_ok": not push.webpush.refused,
        },
        "push_statuses": dict(statuses),
        "fcm_messages": len(push.fcm.requests),
        "fcm_access_tokens_minted": len(push.fcm.grants),
        "webpush_messages": len(push.webpush.messages),
        "push_duplicates": sum(n - 1 for n in (got_fcm + got_web).values() if n > 1),
    }


def check(
    engine: sa.Engine, plan: Plan, mailbox: Mailbox, push: PushProviders | None = None
) -> dict[str, Any]:
    with engine.connect() as conn:
        pushed = check_push(conn, push) if push is not None else {"checks": {}}
        queued = {
            (row.rule_id, row.scheduled_for.astimezone(UTC))
            for row in conn.execute(
                sa.text(
                    "SELECT rule_id, scheduled_for FROM notifications WHERE source = 'schedule'"
                )
            )
        }
        notification_rows = conn.scalar(sa.text("SELECT count(*) FROM notifications"))
        statuses = Counter(
            (row.channel, row.status)
            for row in conn.execute(sa.text("SELECT channel, status FROM notification_deliveries"))
        )
        email_ids = {
            f"<{row.id}@waymark.invalid>"
            for row in conn.execute(
                sa.text("SELECT id FROM notification_deliveries WHERE channel = 'email'")
            )
        }
        attempts: Counter[int] = Counter(
            conn.execute(
                sa.text("SELECT attempts FROM notification_deliveries WHERE channel = 'email'")
            ).scalars()
        )
        leaders = conn.scalar(sa.text("SELECT count(*) FROM scheduler_heartbeats"))
    received = Counter(mailbox.ids)
    missing = plan.expected - queued
    extra = queued - plan.expected
    checks = {
        "every_due_reminder_queued": not missing,
        "none_queued_that_was_not_due": not extra,
        "one_notification_per_rule_and_instant": notification_rows == len(queued),
        "every_email_delivery_sent": statuses.get(("email", "sent"), 0) == len(email_ids),
        "every_inbox_delivery_sent": statuses.get(("inbox", "sent"), 0) == len(queued),
        "smtp_got_each_email_once": set(received) == email_ids
        and all(n == 1 for n in received.values()),
        "smtp_count_equals_expected": len(mailbox.ids) == len(plan.expected),
        **pushed.pop("checks"),
    }
    return {
        **pushed,
        "ok": all(checks.values()),
        "checks": checks,
        "queued": len(queued),
        "missing": sorted((str(r), t.isoformat()) for r, t in missing)[:10],
        "extra": sorted((str(r), t.isoformat()) for r, t in extra)[:10],
        "delivery_statuses": {f"{c}:{s}": n for (c, s), n in sorted(statuses.items())},
        "email_attempts": dict(sorted(attempts.items())),
        "smtp_messages": len(mailbox.ids),
        "smtp_duplicates": sum(n - 1 for n in received.values() if n > 1),
        "smtp_subjects": dict(mailbox.subjects),
        "scheduler_instances_seen": leaders,
    }


if __name__ == "__main__":
    sys.exit(main())
