"""What a notification says. Nothing here names a medication, a dose, a value or a note.

With discreet notifications every channel shows only DISCREET_TEXT. Emails are always neutral:
a short text and a link into the app, whatever the kind (an inbox may be read by others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DISCREET_TEXT = "You have a reminder"


@dataclass(frozen=True)
class Text:
    title: str
    body: str


_BY_KIND = {
    "checkin": Text("Time to check in", "How are you doing today? Take a minute to check in."),
    "medication": Text("Medication reminder", "It's time for your scheduled dose."),
    "counseling": Text("Upcoming session", "Your counseling session is coming up."),
}


def visible_text(kind: str, *, discreet: bool) -> Text:
    """The title and body shown on a lock screen or in the inbox."""
    if discreet:
        return Text(DISCREET_TEXT, "Open the app to see it.")
    return _BY_KIND.get(kind, Text(DISCREET_TEXT, "Open the app to see it."))


# Messages that are not in the inbox: their link goes to the app (or its pages), not an item.
NOT_IN_INBOX = frozenset({"account_exists", "weekly_summaries"})
# A clinician's notice lists at most this many links; the rest are one link to the list.
WEEKLY_LINKS_SHOWN = 50


def weekly_summaries_text(*, base_url: str, summary_ids: list[str]) -> Text:
    """The clinician's notice: links only; no patient name, no health data (a link needs a
    login). Dashboard pages: a clinician who is not signed in lands on them after signing in."""
    base = base_url.rstrip("/")
    links = [f"{base}/clinic/summaries/{sid}" for sid in summary_ids]
    shown = links[:WEEKLY_LINKS_SHOWN]
    more = len(links) - len(shown)
    body = (
        f"{len(links)} new weekly summar{'y is' if len(links) == 1 else 'ies are'} ready for you "
        "in Waymark. Sign in to read them:\n\n"
        + "\n".join(shown)
        + (f"\n... and {more} more: {base}/clinic/summaries" if more else "")
        + "\n\nThis message carries no health information.\n"
    )
    return Text("New weekly summaries are ready", body)


def email_text(
    *,
    discreet: bool,
    link: str,
    kind: str = "",
    payload: Mapping[str, Any] | None = None,
    token: str = "",
) -> Text:
    """Subject and plain-text body of an email: neutral, with a link (and for a password reset
    or a verification, the single-use token), nothing else: never the address, never health
    data."""
    if kind == "weekly_summaries":
        ids = [str(i) for i in (payload or {}).get("summary_ids", [])]
        return weekly_summaries_text(base_url=link, summary_ids=ids)
    if kind == "password_reset":
        return Text(
            "Reset your password" if discreet else "Reset your Waymark password",
            "Hello,\n\n"
            "Someone asked to reset the password of the account that uses this email address.\n"
            "To choose a new password, open this link:\n"
            f"{link}\n\n"
            f"Or enter this code in the app: {token}\n\n"
            "The link works once and expires soon. Every device signed in to the account will\n"
            "be signed out. If you did not ask for this, ignore this email: nothing changes.\n",
        )
    if kind == "verify_email":
        return Text(
            "Confirm your email address" if discreet else "Confirm your email for Waymark",
            "Hello,\n\n"
            "Please confirm that this email address belongs to you by opening this link:\n"
            f"{link}\n\n"
            f"Or enter this code in the app: {token}\n\n"
            "The link works once. If you did not create an account, ignore this email.\n",
        )
    if kind == "account_exists":
        return Text(
            "About your account" if discreet else "About your Waymark account",
            "Hello,\n\n"
            "Someone tried to create an account with this email address, which already has one.\n"
            "If it was you, sign in instead (or reset your password if you have forgotten it).\n"
            "If it was not you, you need not do anything: nothing was changed.\n\n"
            f"Open the app here: {link}\n",
        )
    subject = DISCREET_TEXT if discreet else "A reminder from Waymark"
    body = (
        "Hello,\n\n"
        "You have a reminder waiting in the app.\n\n"
        f"Open it here: {link}\n\n"
        "You can change how and when you get reminders in the app's settings.\n"
    )
    return Text(subject, body)
