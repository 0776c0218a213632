"""What a notification says. Nothing here names a medication, a dose, a value or a note.

With discreet notifications every channel shows only DISCREET_TEXT. Emails are always neutral:
a short text and a link into the app, whatever the kind (an inbox may be read by others).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def email_text(*, discreet: bool, link: str, kind: str = "") -> Text:
    """Subject and plain-text body of an email: neutral, with a link, nothing else."""
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
