"""Push notifications through FCM (Android, and iOS via Firebase) and APNs (iOS).

- ``result``: what a message is (:class:`PushMessage`) and the one outcome type both senders return.
- ``classify``: the providers' error tables as pure functions (HTTP answer → outcome).
- ``credentials``: the OAuth assertion for FCM and the ES256 provider token for APNs.
- ``ratelimit``: the per-provider token bucket (halved on 429, honours Retry-After).
- ``h2client``: a small HTTP/2 client on the sans-IO ``h2`` library (stream limits, REFUSED_STREAM, GOAWAY).
- ``fcm`` / ``apns``: the two senders; ``gateway``: both of them behind one ``send``, with pauses and limits.
- ``templates``: notification kinds and their texts, per locale.
- ``models`` / ``repository`` / ``service`` / ``dispatch`` / ``jobs``: the ``push_deliveries`` rows, creating
  them without duplicates, and the ``push.send_batch`` job that leases, sends and records them.
- ``fakes``: local FCM/OAuth and APNs servers that speak the real protocols (tests, benchmarks and
  ``habitjobs dev``).
"""
