"""Push providers (docs/push.md): FCM HTTP v1, Web Push, APNs direct, and the router that picks
one per device from its platform and the deployment's settings.

android -> FCM; ios -> FCM, or APNs when PUSH_IOS_PROVIDER=apns; web -> Web Push. A platform
whose provider is not configured has its push deliveries failed as `push_not_configured`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.notifications.push.apns import ApnsProvider, load_key
from api.notifications.push.base import HttpProvider, PushMessage, PushTarget
from api.notifications.push.fcm import FcmProvider, load_service_account
from api.notifications.push.webpush import WebPushProvider
from api.notifications.results import Commit, Result

__all__ = ["PushMessage", "PushRouter", "PushTarget"]


class PushRouter:
    def __init__(
        self,
        *,
        fcm: FcmProvider | None = None,
        webpush: WebPushProvider | None = None,
        apns: ApnsProvider | None = None,
        ios: str = "fcm",
        ttl: int = 1800,
    ) -> None:
        self.fcm, self.webpush, self.apns = fcm, webpush, apns
        self.ios = ios
        self.ttl = ttl  # seconds after its due time a reminder push is stale

    def provider_for(self, platform: str | None) -> HttpProvider | None:
        if platform == "web":
            return self.webpush
        if platform == "ios" and self.ios == "apns":
            return self.apns
        if platform in ("ios", "android"):
            return self.fcm
        return None

    def lane(self, platform: str | None) -> str:
        """Deliveries in one lane share a provider and go one after another; lanes run side by
        side, so a slow provider holds up only its own."""
        provider = self.provider_for(platform)
        return f"push:{provider.name}" if provider is not None else "push:none"

    def send(self, *, target: PushTarget, message: PushMessage, commit: Commit | None) -> Result:
        provider = self.provider_for(target.platform)
        if provider is None:
            return Result("failed", "push_not_configured")
        return provider.send(target, message, commit)

    def close(self) -> None:
        for provider in (self.fcm, self.webpush, self.apns):
            if provider is not None:
                provider.close()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PushRouter:
        """Providers for the settings that are filled in. Raises ValueError for a setting that is
        filled in but unusable (named, never quoted), so the scheduler refuses to start."""
        timeout = cfg["PUSH_TIMEOUT"]
        fcm = webpush = apns = None
        if cfg.get("FCM_SERVICE_ACCOUNT"):
            fcm = FcmProvider(
                service_account_info=load_service_account(cfg["FCM_SERVICE_ACCOUNT"]),
                base_url=cfg["FCM_BASE_URL"],
                timeout=cfg.get("FCM_TIMEOUT") or timeout,
            )
        if cfg.get("VAPID_PRIVATE_KEY"):
            if not cfg.get("VAPID_SUBJECT"):
                raise ValueError("VAPID_SUBJECT (mailto: or https: contact) is needed for Web Push")
            webpush = WebPushProvider(
                vapid_private_key=cfg["VAPID_PRIVATE_KEY"],
                subject=cfg["VAPID_SUBJECT"],
                origins=cfg["WEBPUSH_ENDPOINT_ORIGINS"],
                timeout=cfg.get("WEBPUSH_TIMEOUT") or timeout,
            )
        if cfg.get("APNS_KEY"):
            missing = [k for k in ("APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC") if not cfg.get(k)]
            if missing:
                raise ValueError(f"APNS_KEY is set but {', '.join(missing)} is not")
            apns = ApnsProvider(
                key=load_key(cfg["APNS_KEY"]),
                key_id=cfg["APNS_KEY_ID"],
                team_id=cfg["APNS_TEAM_ID"],
                topic=cfg["APNS_TOPIC"],
                base_url=cfg["APNS_BASE_URL"],
                timeout=cfg.get("APNS_TIMEOUT") or timeout,
            )
        ios = cfg.get("PUSH_IOS_PROVIDER") or ("apns" if apns is not None else "fcm")
        if ios not in ("fcm", "apns"):
            raise ValueError("PUSH_IOS_PROVIDER must be fcm or apns")
        if ios == "apns" and apns is None:
            raise ValueError("PUSH_IOS_PROVIDER=apns needs APNS_KEY, APNS_KEY_ID, APNS_TEAM_ID")
        return cls(fcm=fcm, webpush=webpush, apns=apns, ios=ios, ttl=cfg["PUSH_TTL"])
