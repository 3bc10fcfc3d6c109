"""The queue layer: the only package that imports bullmq.

- ``names``: queue names, their default concurrency, the job-id rules.
- ``connection``: the Redis client factory (decode_responses on, no socket timeout on blocking reads).
- ``registry``: job name → queue, payload model, handler, retry policy.
- ``retry``: the pure retry policy (attempts, backoff with jitter, cap).
- ``producer`` / ``outbox``: enqueue now, or enqueue after the caller's transaction commits.
- ``runtime``: the worker process (one bullmq Worker per queue, graceful stop, stalled-job recovery).
- ``inspect``: job state for the API, and the operator's operations (counts, list, retry, …).
"""
