"""Authenticated, encrypted links: TLS bound to Ed25519 identities, tracker pinning.

Used by both the peer (peer.node) and the tracker; imports neither of them.
"""
