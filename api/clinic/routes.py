"""The dashboard's pages: /clinic/*. Each view parses its form or query, calls the same services
as the API routes (the consent gate, the ledger, the audit log), commits and renders."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from api.alerts import services as alert_services
from api.audit import services as audit_services
from api.audit.models import OUTCOMES
from api.auth import mfa
from api.auth import services as auth_services
from api.auth.models import User
from api.auth.routes import throttle_settings
from api.clinic import queries, sessions, web
from api.clinician import services as clinician_services
from api.consent.gate import Gate, window_start
from api.consent.models import CATEGORIES
from api.cows import services as cows_services
from api.db import get_session, in_own_transaction, utcnow
from api.errors import AppError, NotFound, ValidationError
from api.instruments.definitions import INSTRUMENTS
from api.ratelimit import make_counter
from api.security import client_address, password_hasher
from api.summaries import services as summary_services
from api.summaries.render import render_fragment

blp = Blueprint(
    "clinic",
    __name__,
    url_prefix="/clinic",
    template_folder="templates",
    static_folder="static",
)
blp.before_request(web.load_session)
blp.before_request(web.check_csrf)
blp.after_request(web.after)
blp.register_error_handler(AppError, web.handle_app_error)
blp.register_error_handler(web.SignInRequired, web.handle_sign_in_required)
blp.register_error_handler(web.CsrfRefused, web.handle_csrf)

CLINICIAN = "clinician"
ADMIN = "admin"
PERIODS = (7, 14, 30, 90, 180, 365)
TABLE_ROWS = 100


@blp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {
        "csrf_token": web.csrf_token,
        "signed_in": lambda: g.get("clinic_user") if _full() else None,
        "notice": lambda: current_app.config["REDISCLOSURE_NOTICE"],
    }


def _full() -> bool:
    row = g.get("clinic_session")
    return row is not None and row.stage == "full"


def _counter() -> Any:
    return make_counter(current_app.config["REDIS_URL"])


def _box() -> mfa.SecretBox:
    return mfa.SecretBox.of(current_app.config)


def _home(user: User) -> str:
    return url_for("clinic.list_clinicians" if user.role == ADMIN else "clinic.roster")


# --- sign-in ----------------------------------------------------------------------------------


@blp.get("/")
def index() -> Any:
    """The roster (clinicians) or the clinicians list (admins); the sign-in page otherwise."""
    if not _full():
        return redirect(url_for("clinic.login"))
    return redirect(_home(g.clinic_user))


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Email and password; then the second factor (or its enrolment)."""
    target = web.safe_next(request.values.get("next"))
    if request.method == "GET":
        if _full():
            return redirect(target or _home(g.clinic_user))
        return render_template("clinic/login.html", next=target, error=None)
    db = get_session()
    email = request.form.get("email", "")[:320]
    try:
        user = auth_services.check_credentials(
            db,
            email=email,
            password=request.form.get("password", "")[:1024],
            address=client_address(),
            now=utcnow(),
            hasher=password_hasher(),
            counter=_counter(),
            throttle=throttle_settings(),
            own_transaction=in_own_transaction,  # the counted attempt stays whatever the answer
        )
    except AppError as exc:
        db.rollback()
        error = exc.detail
        return render_template("clinic/login.html", next=target, error=error), exc.status
    if user.role not in (CLINICIAN, ADMIN):
        # Not a guess (the password was right): the attempt is given back.
        in_own_transaction(
            auth_services.ATTEMPT_GIVEN_BACK,
            partial(
                auth_services.give_back_attempt,
                email=email,
                address=client_address(),
                counter=_counter(),
            ),
        )
        msg = "This sign-in is for clinicians and administrators. Patients use the Waymark app."
        return render_template("clinic/login.html", next=target, error=msg), 403
    if g.get("clinic_session") is not None:
        sessions.end(db, row=g.clinic_session, now=utcnow(), reason="replaced")
    token, _row = sessions.start(db, user=user, now=utcnow())
    db.commit()
    step = "clinic.second_factor" if user.totp_enrolled_at else "clinic.enrol"
    response = redirect(url_for(step, next=target) if target else url_for(step))
    web.set_cookie(
        response, web.COOKIE, token, max_age=current_app.config["CLINIC_ABSOLUTE_TIMEOUT"]
    )
    web.clear_cookie(response, web.LOGIN_CSRF_COOKIE)
    return response


def _pending() -> tuple[Any, User]:
    row, user = web.current()
    if row.stage != "password":
        raise web.SignInRequired
    return row, user


def _finish(row: Any, target: str | None, user: User) -> Response:
    db = get_session()
    token = sessions.promote(db, row=row, now=utcnow())
    auth_services.forgive_attempt(
        db, email=user.email, address=client_address(), counter=_counter()
    )
    db.commit()
    response = redirect(target or _home(user))
    web.set_cookie(
        response, web.COOKIE, token, max_age=current_app.config["CLINIC_ABSOLUTE_TIMEOUT"]
    )
    return response


@blp.route("/login/code", methods=["GET", "POST"])
def second_factor() -> Any:
    """The TOTP code (or a recovery code) after the password."""
    if not _pending_ok():
        return redirect(url_for("clinic.login"))
    row, user = _pending()
    target = web.safe_next(request.values.get("next"))
    if user.totp_enrolled_at is None:
        return redirect(url_for("clinic.enrol"))
    if request.method == "GET":
        return render_template("clinic/code.html", next=target, error=None)
    db = get_session()
    try:
        auth_services.check_second_factor(
            db,
            user=user,
            code=request.form.get("code", "")[:20],
            address=client_address(),
            now=utcnow(),
            counter=_counter(),
            throttle=throttle_settings(),
            box=_box(),
            own_transaction=in_own_transaction,  # a wrong code's counted failure stays
        )
    except AppError as exc:
        db.rollback()
        return render_template("clinic/code.html", next=target, error=exc.detail), exc.status
    return _finish(row, target, user)


def _pending_ok() -> bool:
    row = g.get("clinic_session")
    return row is not None and row.stage == "password"


@blp.route("/enrol", methods=["GET", "POST"])
def enrol() -> Any:
    """First sign-in: scan the QR code, confirm a code, keep the recovery codes."""
    if not _pending_ok():
        return redirect(url_for("clinic.login"))
    row, user = _pending()
    if user.totp_enrolled_at is not None:
        return redirect(url_for("clinic.second_factor"))
    target = web.safe_next(request.values.get("next"))
    db = get_session()
    box = _box()
    if row.pending_totp_secret is None:
        # Sealed at rest like the enrolled secret: the session row lives until it expires.
        row.pending_totp_secret = box.seal(mfa.new_secret())
        db.commit()
    secret, _ = box.open(row.pending_totp_secret)
    if request.method == "POST":
        if mfa.code_matches(secret, request.form.get("code", "")[:20], utcnow()):
            codes = mfa.enrol(db, user=user, secret=secret, now=utcnow(), box=box)
            token = sessions.promote(db, row=row, now=utcnow())
            db.commit()
            body = render_template(
                "clinic/recovery_codes.html", codes=codes, next=target or _home(user)
            )
            response = Response(body, mimetype="text/html")
            web.set_cookie(
                response, web.COOKIE, token, max_age=current_app.config["CLINIC_ABSOLUTE_TIMEOUT"]
            )
            return response
        error = "That code did not match. Check the time on your phone and try the next code."
    else:
        error = None
    uri = mfa.provisioning_uri(secret=secret, email=user.email)
    page = render_template(
        "clinic/enrol.html", qr=mfa.qr_data_uri(uri), secret=secret, next=target, error=error
    )
    return page, 422 if error else 200


@blp.post("/logout")
def logout() -> Any:
    """Sign out: the session ends on the server, not only in the browser."""
    row = g.get("clinic_session")
    if row is not None:
        db = get_session()
        sessions.end(db, row=row, now=utcnow(), reason="logout")
        db.commit()
    response = redirect(url_for("clinic.login", signed_out=1))
    web.clear_cookie(response, web.COOKIE)
    return response


# --- clinician pages --------------------------------------------------------------------------


def _page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        return 1


@blp.get("/patients")
@web.page(CLINICIAN, action="clinic.roster.list", patient_arg=None)
def roster() -> Any:
    """Patients with a consent in force to you."""
    search = request.args.get("q", "").strip()[:100]
    sort = request.args.get("sort", "name")
    sort = sort if sort in queries.SORTS else "name"
    result = queries.roster(
        get_session(),
        clinician_id=g.clinic_user.id,
        search=search,
        sort=sort,
        page=_page_number(),
        per_page=current_app.config["CLINIC_PAGE_SIZE"],
        now=utcnow(),
    )
    return render_template("clinic/roster.html", r=result, q=search, sort=sort, now=utcnow())


def _period() -> tuple[int, datetime, datetime]:
    try:
        days = int(request.args.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in PERIODS else 30
    end = utcnow()
    return days, end - timedelta(days=days), end


def _not_shared(grants: dict[str, Any], category: str) -> bool:
    return category not in grants


@blp.get("/patients/<uuid:patient_id>")
@web.page(CLINICIAN, action="clinic.patient.read")
def patient(patient_id: uuid.UUID) -> Any:
    """The summary for a period and the consented records as tables."""
    db = get_session()
    now = utcnow()
    days, start, end = _period()
    doc = summary_services.on_demand_summary(
        db,
        clinician_id=g.clinic_user.id,
        patient_id=patient_id,
        start=start,
        end=end,
        now=now,
        config=summary_services.SummaryConfig.from_mapping(current_app.config),
    )
    shared = set(doc["consent"]["categories"])
    me = g.clinic_user.id
    common = {"clinician_id": me, "patient_id": patient_id, "now": now, "limit": TABLE_ROWS}
    tables: dict[str, Any] = {}
    if "symptoms" in shared:
        tables["checkins"] = clinician_services.read_checkins(
            db, from_=start, to=end, cursor=None, **common
        )
        tables["cows"] = clinician_services.read_cows(
            db, from_=start, to=end, cursor=None, **common
        )
    if "medications" in shared:
        tables["doses"] = clinician_services.read_doses(
            db,
            from_=start,
            to=end,
            medication_id=None,
            cursor=None,
            window_minutes=current_app.config["ADHERENCE_ON_TIME_WINDOW_MINUTES"],
            **common,
        )
    if "counseling" in shared:
        tables["sessions"] = clinician_services.read_counseling_sessions(
            db, from_=start, to=end, cursor=None, **common
        )
    fragment = render_fragment(
        doc,
        chart_url=lambda name: url_for(
            "clinic.patient_chart", patient_id=patient_id, name=name, days=days
        ),
    )
    return render_template(
        "clinic/patient.html",
        doc=doc,
        summary=fragment,
        tables=tables,
        shared=shared,
        categories=CATEGORIES,
        days=days,
        periods=PERIODS,
        patient_id=patient_id,
        limit=TABLE_ROWS,
    )


@blp.get("/patients/<uuid:patient_id>/charts/<name>.svg")
@web.page(CLINICIAN, action="clinic.patient.chart")
def patient_chart(patient_id: uuid.UUID, name: str) -> Any:
    """One chart of the patient page's summary (the same period), as an SVG image."""
    from api.summaries import charts

    _days, start, end = _period()
    doc = summary_services.on_demand_summary(
        get_session(),
        clinician_id=g.clinic_user.id,
        patient_id=patient_id,
        start=start,
        end=end,
        now=utcnow(),
        config=summary_services.SummaryConfig.from_mapping(current_app.config),
    )
    if name not in charts.chart_names(doc):
        raise NotFound("No such chart.")
    threshold = current_app.config["ALERT_SOWS_THRESHOLD"]
    fig = charts.figure(doc, name, sows_threshold=threshold)
    svg = charts.to_svg(fig, prefix=f"c-{name}", title=name)
    get_session().commit()
    return Response(svg, mimetype="image/svg+xml")


@blp.get("/patients/<uuid:patient_id>/consent")
@web.page(CLINICIAN, action="clinic.consent.read")
def consent(patient_id: uuid.UUID) -> Any:
    """The consent in force that the patient signed to you."""
    db = get_session()
    now = utcnow()
    gate = Gate.open(db, clinician_id=g.clinic_user.id, now=now, patient_id=patient_id)
    gate.grants(patient_id, CATEGORIES)  # NotFound unless a consent is in force
    rows = gate.consents
    patient_user = db.get(User, patient_id)
    if patient_user is None or not rows:
        raise NotFound("No such patient.")
    return render_template(
        "clinic/consent.html",
        consents=rows,
        patient=patient_user,
        now=now,
        patient_id=patient_id,
        window_start=window_start,
    )


COWS = INSTRUMENTS["cows"]


@blp.route("/patients/<uuid:patient_id>/cows", methods=["GET", "POST"])
@web.page(CLINICIAN, action="clinic.cows.create")
def cows(patient_id: uuid.UUID) -> Any:
    """The COWS form: the 11 items with their published anchors, saved like the API's."""
    db = get_session()
    now = utcnow()
    Gate.open(db, clinician_id=g.clinic_user.id, now=now, patient_id=patient_id).grant(
        patient_id, "symptoms"
    )
    name = db.get(User, patient_id)
    assert name is not None
    context = {"instrument": COWS, "patient_id": patient_id, "patient": name, "saved": None}
    if request.method == "GET":
        return render_template("clinic/cows.html", errors={}, values={}, **context)
    values: dict[str, Any] = {}
    for item in COWS.items:
        raw = request.form.get(f"item-{item.key}")
        if raw is not None and raw.isdigit():
            values[item.key] = int(raw)
    try:
        assessment, _ = cows_services.record_cows(
            db,
            clinician_id=g.clinic_user.id,
            patient_id=patient_id,
            body={"id": None, "assessed_at": now, "answers": values},
            now=now,
        )
    except ValidationError as exc:
        db.rollback()
        errors = {k.removeprefix("answers."): v for k, v in (exc.errors or {}).items()}
        if "answers" in errors:
            missing = [i.key for i in COWS.items if i.key not in values]
            errors.update({key: ["Choose one."] for key in missing})
        page = render_template("clinic/cows.html", errors=errors, values=values, **context)
        return page, 422
    db.commit()
    context["saved"] = assessment
    return render_template("clinic/cows.html", errors={}, values={}, **context), 201


@blp.get("/alerts")
@web.page(CLINICIAN, action="clinic.alerts.list", patient_arg=None)
def alerts() -> Any:
    """Alerts across your patients, newest first."""
    db = get_session()
    state = request.args.get("state", "open")
    state = state if state in ("open", "acknowledged", "all") else "open"
    cursor = request.args.get("cursor") or None
    page = alert_services.list_alerts(
        db, clinician_id=g.clinic_user.id, state=state, limit=50, cursor=cursor, now=utcnow()
    )
    names = _names(db, {a["patient_id"] for a in page["items"]})
    return render_template("clinic/alerts.html", page=page, names=names, state=state)


@blp.post("/alerts/<uuid:alert_id>/acknowledge")
@web.page(CLINICIAN, action="clinic.alerts.acknowledge", patient_arg=None, target_arg="alert_id")
def acknowledge(alert_id: uuid.UUID) -> Any:
    """Acknowledge an alert, with an optional note."""
    db = get_session()
    alert_services.acknowledge_alert(
        db,
        clinician_id=g.clinic_user.id,
        alert_id=alert_id,
        now=utcnow(),
        note=request.form.get("note"),
    )
    db.commit()
    return redirect(url_for("clinic.alerts", acknowledged=1))


def _names(db: Any, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = db.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {row.id: row.display_name for row in rows}


@blp.get("/summaries")
@web.page(CLINICIAN, action="clinic.summaries.list", patient_arg=None)
def summaries() -> Any:
    """Weekly summaries delivered to you, newest first."""
    page = summary_services.list_weekly_summaries(
        get_session(),
        clinician_id=g.clinic_user.id,
        patient_id=None,
        limit=50,
        cursor=request.args.get("cursor") or None,
        now=utcnow(),
    )
    return render_template("clinic/summaries.html", page=page)


@blp.get("/summaries/<uuid:summary_id>")
@web.page(CLINICIAN, action="clinic.summaries.read", patient_arg=None, target_arg="summary_id")
def summary(summary_id: uuid.UUID) -> Any:
    """One weekly summary as delivered."""
    view = summary_services.get_weekly_summary(
        get_session(),
        clinician_id=g.clinic_user.id,
        summary_id=summary_id,
        now=utcnow(),
        notice=current_app.config["REDISCLOSURE_NOTICE"],
    )
    fragment = render_fragment(
        view["content"],
        chart_url=lambda name: url_for("clinic.summary_chart", summary_id=summary_id, name=name),
    )
    return render_template("clinic/summary.html", view=view, summary=fragment)


@blp.get("/summaries/<uuid:summary_id>/charts/<name>.svg")
@web.page(CLINICIAN, action="clinic.summaries.chart", patient_arg=None, target_arg="summary_id")
def summary_chart(summary_id: uuid.UUID, name: str) -> Any:
    """One chart of a weekly summary, as an SVG image."""
    from api.summaries import charts

    view = summary_services.get_weekly_summary(
        get_session(),
        clinician_id=g.clinic_user.id,
        summary_id=summary_id,
        now=utcnow(),
        notice=current_app.config["REDISCLOSURE_NOTICE"],
    )
    if name not in charts.chart_names(view["content"]):
        raise NotFound("No such chart.")
    threshold = current_app.config["ALERT_SOWS_THRESHOLD"]
    fig = charts.figure(view["content"], name, sows_threshold=threshold)
    return Response(charts.to_svg(fig, prefix=f"c-{name}", title=name), mimetype="image/svg+xml")


# --- admin ------------------------------------------------------------------------------------


@blp.get("/admin/clinicians")
@web.page(ADMIN)
def list_clinicians() -> Any:
    """Clinician accounts."""
    db = get_session()
    users = _clinicians(db)
    return render_template(
        "clinic/admin_clinicians.html",
        users=users,
        require_totp=mfa.totp_required(db),
        error=None,
        form={},
    )


@blp.post("/admin/clinicians")
@web.page(ADMIN)
def create_clinician() -> Any:
    """Create a clinician account."""
    db = get_session()
    form = {k: request.form.get(k, "").strip() for k in ("email", "display_name", "organization")}
    password = request.form.get("password", "")
    errors = []
    if "@" not in form["email"] or len(form["email"]) > 320:
        errors.append("Email: enter a valid address.")
    if not 1 <= len(form["display_name"]) <= 100:
        errors.append("Name: 1 to 100 characters.")
    if not 10 <= len(password) <= 1024:
        errors.append("Temporary password: at least 10 characters.")
    if not errors:
        try:
            auth_services.create_user(
                db,
                email=form["email"],
                password=password,
                display_name=form["display_name"],
                timezone="UTC",
                hasher=password_hasher(),
                role=CLINICIAN,
                organization=form["organization"][:200] or None,
            )
            db.commit()
            return redirect(url_for("clinic.list_clinicians", created=1))
        except AppError as exc:
            db.rollback()
            errors.append(exc.detail)
    users = _clinicians(db)
    page = render_template(
        "clinic/admin_clinicians.html",
        users=users,
        require_totp=mfa.totp_required(db),
        error=" ".join(errors),
        form=form,
    )
    return page, 422


def _clinicians(db: Any) -> list[User]:
    return list(db.scalars(select(User).where(User.role == CLINICIAN).order_by(User.display_name)))


def _clinician(db: Any, user_id: uuid.UUID) -> User:
    user = db.get(User, user_id)
    if user is None or user.role != CLINICIAN:
        raise NotFound("No such clinician.")
    return user  # type: ignore[no-any-return]


@blp.post("/admin/clinicians/<uuid:user_id>/deactivate")
@web.page(ADMIN)
def deactivate_clinician(user_id: uuid.UUID) -> Any:
    """Deactivate: every session ends now; consents and the ledger stay."""
    db = get_session()
    user = _clinician(db, user_id)
    now = utcnow()
    auth_services.set_active(db, user=user, active=False, now=now)
    sessions.end_all(db, user_id=user.id, now=now, reason="deactivated")
    db.commit()
    return redirect(url_for("clinic.list_clinicians"))


@blp.post("/admin/clinicians/<uuid:user_id>/second-factor/reset")
@web.page(ADMIN, action="clinic.admin.second_factor_reset", patient_arg=None, target_arg="user_id")
def reset_second_factor(user_id: uuid.UUID) -> Any:
    """A lost phone: the clinician's second factor and recovery codes are forgotten and every
    sign-in (dashboard and API) ends; the next sign-in with the password enrols a new factor."""
    db = get_session()
    user = _clinician(db, user_id)
    now = utcnow()
    mfa.reset(db, user=user)
    auth_services.end_all_sessions(db, user_id=user.id, now=now, reason="second_factor_reset")
    sessions.end_all(db, user_id=user.id, now=now, reason="second_factor_reset")
    db.commit()
    return redirect(url_for("clinic.list_clinicians", reset=1))


@blp.post("/admin/clinicians/<uuid:user_id>/reactivate")
@web.page(ADMIN)
def reactivate_clinician(user_id: uuid.UUID) -> Any:
    """Reactivate a deactivated clinician."""
    db = get_session()
    auth_services.set_active(db, user=_clinician(db, user_id), active=True, now=utcnow())
    db.commit()
    return redirect(url_for("clinic.list_clinicians"))


@blp.post("/admin/clinicians/<uuid:user_id>/invite-code")
@web.page(ADMIN)
def rotate_invite_code(user_id: uuid.UUID) -> Any:
    """A new invite code; the old one stops working."""
    db = get_session()
    auth_services.rotate_invite_code(db, user=_clinician(db, user_id))
    db.commit()
    return redirect(url_for("clinic.list_clinicians"))


@blp.post("/admin/settings")
@web.page(ADMIN)
def update_settings() -> Any:
    """Require (or stop requiring) a second factor of every clinician on the API."""
    db = get_session()
    mfa.set_totp_required(db, required=request.form.get("require_totp") == "on", now=utcnow())
    db.commit()
    return redirect(url_for("clinic.list_clinicians"))


def _uuid_arg(name: str) -> uuid.UUID | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise ValidationError({name: ["Not an id."]}) from exc


def _date_arg(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
    except ValueError as exc:
        raise ValidationError({name: ["Use a date: YYYY-MM-DD."]}) from exc


@blp.get("/admin/audit")
@web.page(ADMIN)
def audit() -> Any:
    """The audit log, newest first, with filters."""
    outcome = request.args.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationError({"outcome": [f"One of: {', '.join(OUTCOMES)}."]})
    to = _date_arg("to")
    page = audit_services.list_audit(
        get_session(),
        actor_id=_uuid_arg("actor"),
        patient_id=_uuid_arg("patient"),
        outcome=outcome,
        from_=_date_arg("from"),
        to=to + timedelta(days=1) if to else None,  # the whole last day
        limit=50,
        cursor=request.args.get("cursor") or None,
    )
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return render_template("clinic/audit.html", page=page, args=args, outcomes=OUTCOMES)


# --- links from emails that must land ---------------------------------------------------------

inbox_blp = Blueprint("inbox_link", __name__, template_folder="templates")


@inbox_blp.get("/inbox/<uuid:notification_id>")
def inbox_link(notification_id: uuid.UUID) -> Any:  # noqa: ARG001 - the link names it
    """Where a reminder email's link lands: a page that sends the reader to the app (the
    reminder itself is in the app's inbox; nothing is looked up here)."""
    response = Response(render_template("clinic/inbox_link.html"), mimetype="text/html")
    return web.after(response)
