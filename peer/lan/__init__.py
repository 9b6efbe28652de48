"""LAN discovery over mDNS / DNS-SD, shared by the peer and the tracker.

``addresses`` (interfaces and addresses to advertise or dial), ``advertiser``
(``ServiceAdvertiser``, ``LanAdvertiser``), ``browser`` (``LanBrowser``,
``find_tracker``, ``list_lan``) and ``zeroconf_internals`` (the one module that imports
zeroconf's private modules). The records themselves (TXT encoding, the tracker-less
lock) are sans-IO and live in ``protocol.lan``.

This package imports only ``protocol``, zeroconf and ifaddr, never ``peer.node`` or
``peer.gui``, so the tracker can use it without depending on the peer
(tests/test_import_layers.py enforces it).
"""
