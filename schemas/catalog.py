"""Every topic mirrorhub declares, found in the ``schemas`` modules themselves: a topic is
declared by being a module-level :class:`~schemas.topics.Topic` value there, and nothing needs
adding to a list. The services' declarations (``services/*/handlers.py``) must serve each
operation exactly once; tests/test_asyncapi.py checks that, and that docs/asyncapi.yaml says
what the declarations say."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from schemas import (
    admins,
    audit,
    auth,
    envelope,
    export,
    faces,
    files,
    homeassistant,
    liveness,
    messaging,
    photos,
    recognitions,
    service,
    vision,
)
from schemas.topics import Operation, Topic

MODULES: tuple[ModuleType, ...] = (auth, admins, audit, vision, faces, photos, liveness,
                                   recognitions, messaging, files, homeassistant, export,
                                   service, envelope)


def _declared(modules: tuple[ModuleType, ...]) -> tuple[Topic[Any], ...]:
    found: dict[str, Topic[Any]] = {}
    for module in modules:
        for value in vars(module).values():
            if (isinstance(value, Topic)
                    and found.setdefault(value.template, value) is not value):
                raise ValueError(f"topic {value.template} is declared twice")
    return tuple(found.values())


TOPICS: tuple[Topic[Any], ...] = _declared(MODULES)
OPERATIONS: tuple[Operation[Any, Any], ...] = tuple(
    topic for topic in TOPICS if isinstance(topic, Operation)
)
