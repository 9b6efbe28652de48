"""``treecast-peer`` with OpenCV, numpy and PyAV made unimportable.

A headless viewer that neither shows, records, plays nor transcodes must not need
them (their import is ~0.35 s of CPU and ~15 MB per process: docs/PERFORMANCE.md,
section 5). Started with the peer's own command line (``Session.start_peer(...,
module="tests.support.bare_peer")``); any use of them fails with ImportError.
"""

from __future__ import annotations

import sys

BLOCKED = ("cv2", "numpy", "av")

for _name in BLOCKED:
    sys.modules[_name] = None  # type: ignore[assignment]

from peer.node.cli import main  # noqa: E402  (after the block, on purpose)

if __name__ == "__main__":
    sys.exit(main())
