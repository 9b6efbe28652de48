"""Saying so when a private room's members refuse our proof of its passphrase.

Members hold each other to the passphrase in their Hellos (link.py): a link whose
other end cannot prove it is closed "not a member of this private room". A wrong
passphrase never leads here (it derives another room id: that peer waits alone in an
empty room, and the app says so). What leads here is the room's id held with another
secret (an id copied from somewhere, a hand-made config): every member it dials
closes the link, and without a word it would wait for a parent forever. This turns
the first such refusal, while we look for a parent, into one message.

Only links we dialled count, and only while we are out of the tree: an inbound
stranger refused by us is the room working as meant, not news for our user.
"""

from __future__ import annotations

# What link.py closes a link with when the other end's Hello lacks a valid proof
# (our check, or the member's Bye). A test makes the real refusal and reads it.
NOT_A_MEMBER = "not a member of this private room"

REFUSED_MESSAGE = ("nobody in this private room accepted our passphrase; check the room "
                   "name and the passphrase with the people in it")


class MembershipRefusals:
    """Decides when to tell the user the room's members refused us (once per run)."""

    def __init__(self) -> None:
        self._told = False

    def refused(self, reason: str, *, outbound: bool, seeking: bool) -> str | None:
        """A link closed, or its other end said Bye; the message to show now, or None.

        Args:
            reason: why (our close reason, or the other end's Bye's).
            outbound: we dialled it.
            seeking: we were out of the tree, looking for a parent.
        """
        if self._told or not outbound or not seeking or NOT_A_MEMBER not in reason:
            return None
        self._told = True
        return REFUSED_MESSAGE
