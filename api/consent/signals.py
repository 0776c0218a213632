"""Signals the consent feature sends, so that higher features react without being imported here.

`consent_narrowed` is sent (by the route that owns the transaction, before it commits) when what a
clinician may see of a patient shrank: a consent revoked, or replaced by a new one (which may
cover fewer categories or a shorter window). Receivers act in the same transaction, e.g. the bulk
export feature voids finished exports that hold data the gate no longer allows.
Keyword arguments: session, patient_id, recipient_id, now.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

consent_narrowed = _signals.signal("consent-narrowed")
