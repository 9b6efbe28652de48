"""TCP hole punching per NAT pair, in the NAT lab (peer/node/punch.py).

Both peers listen on a port (shared with SO_REUSEPORT, as the node's listener would
be), then dial each other from it at an agreed moment. Routers drop unasked-for
connection attempts, as home routers do. Port-preserving NATs on both sides connect;
a symmetric NAT on either side cannot, and the attempt ends within the punch timeout.
"""

from __future__ import annotations

import pytest

from peer.node.punch import PUNCH_TIMEOUT_S
from tests.support.natlab import Kind, NatLab, natlab_unavailable, punch_between

_why = natlab_unavailable((Kind.CONE, Kind.SYMMETRIC))
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_why is not None, reason=str(_why))]
@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    with NatLab((Kind.CONE, Kind.CONE, Kind.SYMMETRIC, Kind.SYMMETRIC),
                drop_unsolicited=True) as made:
        yield made


def test_two_port_preserving_nats_connect(lab: NatLab) -> None:
    one, two = punch_between(lab.hosts[0], lab.hosts[1])
    assert one.startswith("connected") and two.startswith("connected"), (one, two)


@pytest.mark.parametrize("pair", [(0, 2), (2, 3)], ids=["cone-symmetric",
                                                       "symmetric-symmetric"])
def test_a_symmetric_nat_gives_up_within_the_timeout(lab: NatLab,
                                                     pair: tuple[int, int]) -> None:
    one, two = punch_between(lab.hosts[pair[0]], lab.hosts[pair[1]])
    for line in (one, two):
        assert line.startswith("failed"), (one, two)
        assert float(line.split()[1]) < PUNCH_TIMEOUT_S + 1.0
