"""Home Assistant's MQTT discovery for every mirror, and the device events behind it.

The messaging service (it knows every mirror and what each is told to show) publishes, retained,
per mirror:

- ``{prefix}/sensor/{node_id}/person/config``: a sensor "Person at the mirror" whose state is
  ``mirrors/{mirror_id}/person`` (retained plain text: the name shown, or ``nobody``), available
  while the mirror's status is ``online``;
- ``{prefix}/binary_sensor/{node_id}/connectivity/config``: a ``connectivity`` binary sensor on
  ``mirrors/{mirror_id}/status`` (``online`` on, ``offline`` off).

``prefix`` is ``MIRRORHUB_HA_DISCOVERY_PREFIX`` (``homeassistant``, one topic level) and
``node_id`` is ``mirrorhub_`` and the mirror id with anything but letters, digits, ``_`` and
``-`` replaced (Home Assistant's rule), plus a hash of the id when something was replaced. Both
go out at the service's start for every mirror it knows, when a mirror is first heard of, and
when ``mirrorhub device add`` says a mirror's account was made (``events/devices/added``), so a
mirror has its entities before anybody is recognised at it. When its account is removed
(``mirrorhub device remove``, ``events/devices/removed``) both configs are replaced by empty
retained payloads, which is how Home Assistant is told to remove an entity, and the mirror's
retained topics are cleared. Only internal accounts may publish ``events/devices/...``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.names import MirrorId
from schemas.topics import Topic


class DeviceEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    mirror_id: MirrorId


class DiscoveryDevice(BaseModel):
    identifiers: list[str]
    name: str
    manufacturer: str = "mirrorhub"
    model: str = "smart mirror"


class DiscoveryConfig(BaseModel):
    """One entity's discovery payload, with Home Assistant's field names; absent fields are
    left out of the JSON."""

    name: str
    unique_id: str
    state_topic: str
    device: DiscoveryDevice
    device_class: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None
    availability_topic: str | None = None
    payload_available: str | None = None
    payload_not_available: str | None = None
    icon: str | None = None
    origin: dict[str, str] | None = None


DISCOVERY_CONFIG: Topic[DiscoveryConfig] = Topic(
    "{prefix}/{component}/{node_id}/{object_id}/config", DiscoveryConfig,
    "Home Assistant MQTT discovery (retained): a mirror's person sensor and connectivity binary"
    " sensor; an empty payload removes the entity.",
)
MIRROR_PERSON: Topic[BaseModel] = Topic(
    "mirrors/{mirror_id}/person", None,
    "Who the mirror shows now (retained plain text): a name, or nobody. Home Assistant's state.",
)
DEVICE_ADDED = Topic(
    "events/devices/added", DeviceEvent,
    "A mirror's own broker account was made (mirrorhub device add).",
)
DEVICE_REMOVED = Topic(
    "events/devices/removed", DeviceEvent,
    "A mirror's own broker account was removed (mirrorhub device remove): forget the mirror.",
)
