"""What an operator watches: Prometheus metrics (:mod:`.metrics`), log context carried from a request into
the jobs it starts (:mod:`.context`), the worker's metrics endpoint and queue sampler (:mod:`.exporter`).

Imported by every layer, importing none of them (only ``prometheus_client`` and the standard library)."""
