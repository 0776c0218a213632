"""A phone and a clinician, scripted against the client that openapi-python-client generates from
the served document (package `waymark_client`). Type-checked with mypy --strict and run against a
live server by tests/clients/test_generated_clients.py. No casts, no hand-written requests: every
call goes through the generated functions, and answers are narrowed with isinstance. The bulk
export needs the scheduler's export job running beside the server (the test runs it).

Emails (the verification and password-reset links) are read as a mail client would: the test's
SMTP server writes each message it receives into MAIL_DIR as an .eml file.

Usage: python flow.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD MAIL_DIR
"""

from __future__ import annotations

import datetime as dt
import email as email_parser
import io
import re
import sys
import time
import uuid
import zipfile
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

from waymark_client import AuthenticatedClient, Client
from waymark_client.api.account import get_me
from waymark_client.api.agenda import get_agenda
from waymark_client.api.auth import (
    create_clinician,
    create_token,
    refresh_token,
    register_user,
    request_password_reset,
    reset_password,
    verify_email,
)
from waymark_client.api.checkins import create_checkin, delete_checkin
from waymark_client.api.clinician import list_patient_checkins, list_patients
from waymark_client.api.consent import create_consent, lookup_clinician
from waymark_client.api.counseling import create_counseling_session, get_counseling_attendance
from waymark_client.api.crisis import list_crisis_resources
from waymark_client.api.export import export_own_data_zip
from waymark_client.api.fhir import get_bulk_file, get_bulk_status, start_patient_export
from waymark_client.api.instruments import list_instruments
from waymark_client.api.medications import create_medication, get_adherence, log_dose
from waymark_client.api.summaries import get_patient_summary_html, get_patient_summary_pdf
from waymark_client.api.sync import get_changes
from waymark_client.models import (
    Adherence,
    Agenda,
    AttendanceSummary,
    Checkin,
    CheckinChange,
    CheckinCreate,
    CheckinCreateAnswersType0,
    CheckinCreateInstrument,
    ClinicianCard,
    ClinicianCheckinPage,
    ClinicianCreate,
    Consent,
    ConsentCreate,
    ConsentCreateCategoriesItem,
    ConsentCreatePurpose,
    CounselingSession,
    CounselingSessionCreate,
    CounselingSessionCreateKind,
    Credentials,
    CrisisResourceList,
    Dose,
    DoseCreate,
    DoseCreateStatus,
    EmailSent,
    EmailVerification,
    InstrumentList,
    Manifest,
    Medication,
    MedicationCreate,
    MedicationCreateUnit,
    PasswordReset,
    PasswordResetRequest,
    Refresh,
    Register,
    Registration,
    RosterPage,
    StartPatientExportPrefer,
    SyncPage,
    TokenPair,
    User,
)
from waymark_client.types import UNSET, File, Unset

T = TypeVar("T")


def ok(value: object, kind: type[T]) -> T:
    """The answer, if it is the documented success type (else the problem stops the flow)."""
    if not isinstance(value, kind):
        raise SystemExit(f"expected {kind.__name__}, got {value!r}")
    return value


def emailed_token(mail_dir: Path, to: str, page: str) -> str:
    """The token in the newest email to `to` that links to `page` (waiting for the sender)."""
    link = re.compile(rf"/{page}#token=([A-Za-z0-9_-]+)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.eml"), reverse=True):
            message = email_parser.message_from_bytes(path.read_bytes())
            payload = message.get_payload(decode=True)
            if message["To"] != to or not isinstance(payload, bytes):
                continue
            found = link.search(payload.decode())
            if found:
                return found.group(1)
        time.sleep(0.2)
    raise SystemExit(f"no {page} email arrived")


def sign_in(base: str, email: str, password: str) -> TokenPair:
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    answer = create_token.sync(client=anonymous, body=Credentials(email=email, password=password))
    return ok(answer, TokenPair)


def main(base: str, admin_email: str, admin_password: str, mail_dir: str) -> None:
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    lines = ok(list_crisis_resources.sync(client=anonymous), CrisisResourceList)
    assert lines.items, "crisis lines"

    # An admin makes a clinician.
    admin = sign_in(base, admin_email, admin_password)
    as_admin = AuthenticatedClient(base_url=base, token=admin.access_token)
    clinician_email = f"clinician-{uuid.uuid4().hex[:8]}@example.test"
    made = create_clinician.sync(
        client=as_admin,
        body=ClinicianCreate(
            email=clinician_email,
            password="clinician password 1",
            display_name="Dr. Rivera",
            organization="Eastside Clinic",
        ),
    )
    ok(made, User)

    # The patient registers, signs in, refreshes (and retries the refresh).
    email = f"phone-{uuid.uuid4().hex[:8]}@example.test"
    password = "correct horse battery"
    registered = register_user.sync(
        client=anonymous,
        body=Register(
            email=email, password=password, display_name="Sam", timezone="America/New_York"
        ),
    )
    ok(registered, Registration)  # the same answer whether or not the address had an account
    # The verification link from the email confirms the address.
    verified = verify_email.sync_detailed(
        client=anonymous,
        body=EmailVerification(token=emailed_token(Path(mail_dir), email, "verify-email")),
    )
    assert verified.status_code == HTTPStatus.NO_CONTENT, verified.status_code
    pair = sign_in(base, email, password)
    first = ok(
        refresh_token.sync(client=anonymous, body=Refresh(refresh_token=pair.refresh_token)),
        TokenPair,
    )
    retried = ok(
        refresh_token.sync(client=anonymous, body=Refresh(refresh_token=pair.refresh_token)),
        TokenPair,
    )
    assert retried.refresh_token == first.refresh_token, "a retried refresh gets the same pair"
    phone = AuthenticatedClient(base_url=base, token=retried.access_token)
    me = ok(get_me.sync(client=phone), User)
    assert me.email == email
    assert me.email_verified

    # A SOWS check-in from the instrument the service serves, and one deleted again.
    instruments = ok(list_instruments.sync(client=phone), InstrumentList)
    (sows,) = [i for i in instruments.items if i.code == "sows"]
    answers = CheckinCreateAnswersType0.from_dict({item.key: 1 for item in sows.items})
    now = dt.datetime.now(dt.UTC)
    checkin = ok(
        create_checkin.sync(
            client=phone,
            body=CheckinCreate(
                recorded_at=now - dt.timedelta(minutes=5),
                instrument=CheckinCreateInstrument.SOWS,
                answers=answers,
                craving=3,
            ),
        ),
        Checkin,
    )
    assert checkin.total == len(sows.items)
    gone = ok(
        create_checkin.sync(
            client=phone, body=CheckinCreate(recorded_at=now - dt.timedelta(minutes=4), craving=1)
        ),
        Checkin,
    )
    delete_checkin.sync_detailed(gone.id, client=phone)

    # A medication, a dose taken, adherence, the agenda.
    today = dt.datetime.now(dt.UTC).date()
    medication = ok(
        create_medication.sync(
            client=phone,
            body=MedicationCreate(
                name="Buprenorphine/naloxone",
                dose=8.0,
                unit=MedicationCreateUnit.MG,
                times=["00:00", "12:00"],
                start_date=today - dt.timedelta(days=2),
            ),
        ),
        Medication,
    )
    agenda = ok(get_agenda.sync(client=phone), Agenda)
    past = [d for d in agenda.doses if d.scheduled_for <= dt.datetime.now(dt.UTC)]
    if past:
        dose = ok(
            log_dose.sync(
                medication.id,
                client=phone,
                body=DoseCreate(
                    status=DoseCreateStatus.TAKEN,
                    scheduled_for=past[0].scheduled_for,
                    taken_at=past[0].scheduled_for,
                ),
            ),
            Dose,
        )
        assert dose.status == "taken"
    adherence = ok(get_adherence.sync(client=phone), Adherence)
    assert adherence.on_time_window_minutes > 0

    # Counseling.
    session = ok(
        create_counseling_session.sync(
            client=phone,
            body=CounselingSessionCreate(
                kind=CounselingSessionCreateKind.INDIVIDUAL,
                title="Weekly counseling",
                starts_at=now + dt.timedelta(days=1),
                duration_minutes=50,
            ),
        ),
        CounselingSession,
    )
    assert session.attendance == "scheduled"
    ok(get_counseling_attendance.sync(client=phone), AttendanceSummary)

    # Sync, page by page, until has_more is false; the deleted check-in comes as a tombstone.
    cursor: str | Unset = UNSET
    deletes = upserts = 0
    while True:
        page = ok(get_changes.sync(client=phone, since=cursor, limit=2), SyncPage)
        for change in page.changes:
            if change.op == "delete":
                deletes += 1
                assert change.data is None
            else:
                upserts += 1
            if isinstance(change, CheckinChange) and change.data is not None:
                assert change.data.id == checkin.id
        cursor = page.cursor
        if not page.has_more:
            break
    assert deletes == 1 and upserts >= 3, (deletes, upserts)

    # Consent to the clinician, found by invite code; the clinician reads the check-ins.
    doctor_pair = sign_in(base, clinician_email, "clinician password 1")
    doctor = AuthenticatedClient(base_url=base, token=doctor_pair.access_token)
    doctor_me = ok(get_me.sync(client=doctor), User)
    assert isinstance(doctor_me.invite_code, str)
    card = ok(lookup_clinician.sync(client=phone, invite_code=doctor_me.invite_code), ClinicianCard)
    consent = ok(
        create_consent.sync(
            client=phone,
            body=ConsentCreate(
                recipient_id=card.id,
                categories=[
                    ConsentCreateCategoriesItem.SYMPTOMS,
                    ConsentCreateCategoriesItem.MEDICATIONS,
                    ConsentCreateCategoriesItem.COUNSELING,
                ],
                purpose=ConsentCreatePurpose.TREATMENT,
                signature="Sam Example",
                consent_text_version="2026-01",
                expires_at=now + dt.timedelta(days=90),
                data_from=now - dt.timedelta(days=1),
            ),
        ),
        Consent,
    )
    assert consent.status == "active"
    roster = ok(list_patients.sync(client=doctor), RosterPage)
    assert [entry.patient_id for entry in roster.items] == [me.id]
    seen = ok(list_patient_checkins.sync(me.id, client=doctor), ClinicianCheckinPage)
    assert [c.id for c in seen.items] == [checkin.id]

    # The summary as an HTML page and as a PDF: each an operation with one media type.
    html = ok(get_patient_summary_html.sync(me.id, client=doctor), str)
    assert html.lower().startswith("<!doctype html>"), html[:40]
    pdf = ok(get_patient_summary_pdf.sync(me.id, client=doctor), File)
    assert pdf.payload.read(5) == b"%PDF-"

    # The patient's own data as a zip of CSVs.
    exported = ok(export_own_data_zip.sync(client=phone), File)
    with zipfile.ZipFile(io.BytesIO(exported.payload.read())) as archive:
        assert "profile.csv" in archive.namelist(), archive.namelist()

    # A bulk export to the end: kick off, poll as Retry-After says, read every NDJSON file.
    kickoff = start_patient_export.sync_detailed(
        client=doctor, prefer=StartPatientExportPrefer.RESPOND_ASYNC
    )
    assert kickoff.status_code == 202, kickoff.content
    job_id = uuid.UUID(kickoff.headers["Content-Location"].rsplit("/", 1)[-1])
    deadline = time.monotonic() + 120
    while True:
        polled = get_bulk_status.sync_detailed(job_id, client=doctor)
        if isinstance(polled.parsed, Manifest):
            manifest = polled.parsed
            break
        assert polled.status_code == 202, polled.content
        assert "%" in polled.headers["X-Progress"]
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(int(polled.headers["Retry-After"]))
    assert manifest.output, "a consented patient's data is exported"
    for output in manifest.output:
        file_job, name = output.url.rsplit("/", 2)[-2:]
        assert uuid.UUID(file_job) == job_id
        ndjson = ok(get_bulk_file.sync(job_id, name.removesuffix(".ndjson"), client=doctor), str)
        assert len(ndjson.splitlines()) == output.count, (output.type_, output.count)

    # The password is forgotten: a reset link by email sets a new one and ends every sign-in.
    asked = request_password_reset.sync(client=anonymous, body=PasswordResetRequest(email=email))
    ok(asked, EmailSent)  # the same answer whether or not the address has an account
    new_password = "a brand new passphrase"
    reset = reset_password.sync_detailed(
        client=anonymous,
        body=PasswordReset(
            token=emailed_token(Path(mail_dir), email, "reset-password"),
            new_password=new_password,
        ),
    )
    assert reset.status_code == HTTPStatus.NO_CONTENT, reset.status_code
    assert get_me.sync_detailed(client=phone).status_code == HTTPStatus.UNAUTHORIZED
    again = AuthenticatedClient(
        base_url=base, token=sign_in(base, email, new_password).access_token
    )
    assert ok(get_me.sync(client=again), User).id == me.id
    print("flow ok")  # noqa: T201


if __name__ == "__main__":
    main(*sys.argv[1:5])
