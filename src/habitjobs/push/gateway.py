"""Both senders of one worker process behind one ``send``: rate limits, pauses after refused credentials.

Created on first use by :meth:`habitjobs.resources.Resources.push` (the API process never sends), closed
with the process's resources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from habitjobs.config import Settings
from habitjobs.observability import domain as observe
from habitjobs.observability import tracing
from habitjobs.push.apns import ApnsSender
from habitjobs.push.fcm import FcmSender
from habitjobs.push.ratelimit import TokenBucket
from habitjobs.push.result import Outcome, Provider, PushMessage, SendResult, retry

log = logging.getLogger(__name__)

# A send waits this long at most for a rate-limit token; longer waits become queue retries.
MAX_RATE_WAIT_S = 1.0


def pause_scopes(message: PushMessage) -> tuple[str, ...]:
    """The pause scopes that stop ``message``: its provider, and Firebase's APNs leg for iOS via FCM."""
    if message.provider is Provider.APNS:
        return ("apns",)
    if message.platform == "ios":
        return ("fcm", "fcm-ios")
    return ("fcm",)


class PushGateway:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.apns = ApnsSender(settings)
        self.fcm = FcmSender(settings)
        self.limits = {
            Provider.APNS: TokenBucket(settings.push_apns_rate_per_s),
            Provider.FCM: TokenBucket(settings.push_fcm_rate_per_s),
        }
        self._pause_s = settings.push_auth_pause_s
        # scope → (monotonic time the pause ends, why)
        self._paused: dict[str, tuple[float, str]] = {}

    def paused(self, message: PushMessage) -> str | None:
        """Why ``message``'s sender is paused, or None."""
        now = self._clock()
        for scope in pause_scopes(message):
            entry = self._paused.get(scope)
            if entry is not None:
                if now < entry[0]:
                    return f"{scope} paused: {entry[1]}"
                del self._paused[scope]
                observe.push_paused(scope, False)
        return None

    def pause(self, scope: str, reason: str) -> None:
        now = self._clock()
        entry = self._paused.get(scope)
        if entry is not None and now < entry[0]:
            return  # already paused: refusals of the requests that were in flight add nothing, nor a log line
        log.error(
            "push credentials/configuration refused (%s): %s; pausing %s for %.0f s",
            scope,
            reason,
            scope,
            self._pause_s,
        )
        self._paused[scope] = (now + self._pause_s, reason)
        observe.push_paused(scope, True)

    async def send(self, message: PushMessage) -> SendResult:
        """Send one message: honours pauses and the provider's rate; never sleeps more than a second.

        A pause stops a message at every step of its way: before its rate-limit token, after waiting for
        it, and when its turn for a stream comes (a request queued behind the one that was refused)."""
        paused = self.paused(message)
        if paused is not None:
            return SendResult(Outcome.AUTH_CONFIG, reason=paused)
        bucket = self.limits[message.provider]
        wait_s = await bucket.acquire(MAX_RATE_WAIT_S)
        if wait_s is not None:
            return retry(f"{message.provider} rate limit", wait_s, slow_down=True)
        paused = self.paused(message)
        if paused is not None:
            return SendResult(Outcome.AUTH_CONFIG, reason=paused)
        sender = self.apns if message.provider is Provider.APNS else self.fcm
        if tracing.ENABLED:
            with tracing.span(f"push {message.provider.value}", kind="CLIENT"):
                result = await sender.send(message, stop=lambda: self.paused(message))
        else:
            result = await sender.send(message, stop=lambda: self.paused(message))
        if result.throttled:
            bucket.throttled(result.retry_after_s)
        if result.outcome is Outcome.AUTH_CONFIG and result.pause_scope:
            self.pause(result.pause_scope, result.reason)
        return result

    async def aclose(self) -> None:
        await self.apns.aclose()
        await self.fcm.aclose()
