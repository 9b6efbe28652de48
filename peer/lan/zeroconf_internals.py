"""The only module that imports python-zeroconf's private modules.

zeroconf defines its DNS record classes in ``zeroconf._dns`` and re-exports them from
the package without listing them in ``__all__``, so ``mypy --strict`` refuses the
package-level names. The browser needs them to read SRV/TXT/A records straight from
the cache (see ``peer.lan.browser`` for why it reads the cache rather than trusting
PTR records). Keeping the import here means a zeroconf release that moves them breaks
one line, not every module that touches mDNS.
"""

from __future__ import annotations

from zeroconf._dns import DNSAddress, DNSRecord, DNSService, DNSText

__all__ = ["DNSAddress", "DNSRecord", "DNSService", "DNSText"]
