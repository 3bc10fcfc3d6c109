"""Local FCM (+ OAuth) and APNs servers that speak the real protocols over TLS + HTTP/2.

Used by the tests, the benchmark and ``habitjobs dev``; they need the ``devstack`` extra (hypercorn, trustme).
Start them with :func:`start_fake_providers`; the device token picks each answer (see ``outcomes``).
"""

from habitjobs.push.fakes.outcomes import Behaviour
from habitjobs.push.fakes.pushlog import PushLog, Received
from habitjobs.push.fakes.runner import Ports, RunningFakes, running_fakes, start_fake_providers

__all__ = [
    "Behaviour",
    "Ports",
    "PushLog",
    "Received",
    "RunningFakes",
    "running_fakes",
    "start_fake_providers",
]
