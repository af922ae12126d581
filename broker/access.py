"""Who may use which topics on the embedded broker: mirrors keep to their own.

Service, bridge and operator accounts may use every topic. A mirror's own account (username =
its mirror id, from ``mirrorhub device add``) may only

* publish ``mirrors/{its id}/frame``, ``.../widgets``, ``.../status`` and ``.../not_me`` (its
  user says a recognition was wrong: schemas/faces.py);
* subscribe to, and receive, topics under ``mirrors/{its id}/`` (its display, its face events),
  and its own reply topic ``reply/{its client id}``.

So a mirror can neither read what another mirror shows (somebody's messages) nor claim that
somebody stands in front of it (``events/vision/recognized`` is the vision service's to say).
The shared ``device`` account has the same rights for every mirror id at once: handy on a bench,
not private; give each real mirror its own account. Topics are checked below the deployment's
topic namespace. Mosquitto gets the same rules from an ACL file (docs/operations.md).

A Last Will is a publish the broker makes later on the client's behalf, so it is checked when
the client connects: a mirror's Will may only be its own ``mirrors/{id}/status``.

Client ids belong to roles, so that no account can take over another's session (the broker
drops the older of two connections with one client id, and hands a persistent session to
whoever connects with its id):

* ``auth``, ``vision``, ``messaging`` and ``bridge`` own the ids with their name as a
  ``-``-separated word followed by more: ``messaging-main``, ``staging-messaging-main`` (a
  namespaced deployment's, :func:`namespaced_client_id`), ``bridge-3f2a...``. Only that
  account may use them, and it may use no other;
* a mirror account uses exactly its mirror id (namespaced like the services' ids), which is
  therefore nobody else's;
* every other account (``operator``, the shared ``device`` one) may use any id that is neither.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

SHARED_DEVICE = "device"
MIRROR_PUBLISHES = frozenset({"frame", "widgets", "status", "not_me"})
# The accounts that own the client ids carrying their name (see the module docstring).
ID_OWNERS = ("auth", "vision", "messaging", "bridge")


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


def mirror_will_may(mirror_id: str, topic: str, namespace: str = "") -> bool:
    """Whether the account of ``mirror_id`` (``+``: the shared device account) may leave a Last
    Will on ``topic``: a topic it may publish to (:func:`mirror_may`), its own
    ``mirrors/{id}/status``, and a topic name, not a filter."""
    levels = topic.split("/")
    return (levels[-1] == "status" and "" not in levels and not set(topic) & set("+#")
            and mirror_may(mirror_id, "", topic, Access.PUBLISH, namespace))


def namespaced_client_id(namespace: str, name: str) -> str:
    """``name`` as a client id of the deployment with topic ``namespace`` (``staging/``:
    ``staging-name``), so that deployments sharing a broker do not share client ids."""
    prefix = namespace.strip("/").replace("/", "-")
    return f"{prefix}-{name}" if prefix else name


def id_owner(client_id: str) -> str | None:
    """The role account that owns ``client_id`` (:data:`ID_OWNERS`), or None."""
    words = client_id.split("-")
    return next((word for word in words[:-1] if word in ID_OWNERS), None)


def client_id_may(username: str | None, mirror: bool, client_id: str, namespace: str = "",
                  is_mirror_id: Callable[[str], bool] = lambda _: False) -> bool:
    """Whether ``username`` (``mirror``: a mirror's own account) may connect as ``client_id``;
    ``is_mirror_id`` tells which names are mirror accounts' (their ids are theirs alone)."""
    owner = id_owner(client_id)
    if mirror:
        return owner is None and client_id == namespaced_client_id(namespace, username or "")
    if username in ID_OWNERS:
        return owner == username
    if owner is not None:
        return False
    bare = client_id.removeprefix(namespaced_client_id(namespace, ""))
    return not is_mirror_id(client_id) and not is_mirror_id(bare)
