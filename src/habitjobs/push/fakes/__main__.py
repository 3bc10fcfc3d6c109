"""``python -m habitjobs.push.fakes --dir DIR [--latency-ms N] [--goaway-every N]``: run the fakes as a
process (benchmarks run them beside, not inside, the measured worker).

Prints one JSON line with the ``HABITJOBS_PUSH_*`` environment and the ports, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from habitjobs.push.fakes.outcomes import Behaviour
from habitjobs.push.fakes.runner import start_fake_providers


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m habitjobs.push.fakes")
    parser.add_argument("--dir", type=Path, required=True, help="where the throwaway credentials go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--goaway-every", type=int, default=0)
    parser.add_argument(
        "--no-throttle", action="store_true", help="APNs: keep the stream limit after rejections"
    )
    parser.add_argument("--log-file", type=Path, default=None, help="append accepted pushes as JSON lines")
    args = parser.parse_args()
    behaviour = Behaviour(
        latency_ms=args.latency_ms,
        apns_goaway_every=args.goaway_every,
        apns_throttle_on_reject=not args.no_throttle,
    )
    fakes = start_fake_providers(args.dir, host=args.host, behaviour=behaviour, log_file=args.log_file)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"env": fakes.env, "ports": fakes.ports, "pushes_url": fakes.pushes_url}), flush=True)
    stop.wait()
    fakes.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
