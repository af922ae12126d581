"""Who may use which topics on the embedded broker: mirrors keep to their own.

Service, bridge and operator accounts may use every topic. A mirror's own account (username =
its mirror id, from ``mirrorhub device add``) may only

* publish ``mirrors/{its id}/frame``, ``.../widgets`` and ``.../status``;
* subscribe to, and receive, topics under ``mirrors/{its id}/`` (its display, its face events),
  and its own reply topic ``reply/{its client id}``.

So a mirror can neither read what another mirror shows (somebody's messages) nor claim that
somebody stands in front of it (``events/vision/recognized`` is the vision service's to say).
The shared ``device`` account has the same rights for every mirror id at once: handy on a bench,
not private; give each real mirror its own account. Topics are checked below the deployment's
topic namespace. Mosquitto gets the same rules from an ACL file (docs/operations.md).
"""

from __future__ import annotations

from enum import StrEnum

SHARED_DEVICE = "device"
MIRROR_PUBLISHES = frozenset({"frame", "widgets", "status"})


class Access(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    RECEIVE = "receive"


def mirror_may(mirror_id: str, client_id: str, topic: str, access: Access,
               namespace: str = "") -> bool:
    """Whether the account of ``mirror_id`` (``+`` for the shared device account) may use
    ``topic`` (a topic filter when subscribing) in that way."""
    if namespace:
        if not topic.startswith(namespace):
            return False
        topic = topic[len(namespace):]
    levels = topic.split("/")
    if access is not Access.PUBLISH and levels == ["reply", client_id]:
        return True
    if len(levels) < 3 or levels[0] != "mirrors" or "#" in levels[1]:
        return False
    if mirror_id != "+" and levels[1] != mirror_id:
        return False
    if access is Access.PUBLISH:
        return len(levels) == 3 and levels[2] in MIRROR_PUBLISHES
    return True
