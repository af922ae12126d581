"""Topic templates as validated values.

A template such as ``mirrors/{mirror_id}/frame`` is checked when it is declared: every
placeholder fills a whole level, and no wildcard hides in it. Subscribing uses :attr:`Topic.filter`
(placeholders become ``+``); publishing uses :meth:`Topic.format`, which refuses values that would
change the topic's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")

# Characters no topic may hold, as a regex class body that both Python's re and pydantic's
# (Rust) regex read: MQTT forbids NUL, and Mosquitto drops the connection of a client that
# publishes a topic with a control character (C0, DEL, C1) or a Unicode non-character in it,
# so a service told to answer on such a topic would be thrown off the broker.
UNSAFE_TOPIC_CHARACTERS = r"\u0000-\u001F\u007F-\u009F\uFDD0-\uFDEF" + "".join(
    rf"\U{plane << 16 | 0xFFFE:08X}\U{plane << 16 | 0xFFFF:08X}" for plane in range(17))
_UNSAFE = re.compile(f"[{UNSAFE_TOPIC_CHARACTERS}]")


class TopicError(ValueError):
    """A topic template or a value put into one is malformed."""


def safe_topic_text(text: str) -> bool:
    """Whether ``text`` may appear in a topic on every broker: none of
    :data:`UNSAFE_TOPIC_CHARACTERS`, and no lone surrogate (it has no UTF-8; JSON may still
    carry one as an escape)."""
    return _UNSAFE.search(text) is None and not any("\ud800" <= c <= "\udfff" for c in text)


def _check_level_value(name: str, value: str) -> str:
    if not value or any(c in value for c in "/+#\0"):
        raise TopicError(f"{name}={value!r} cannot fill one topic level")
    return value


@dataclass(frozen=True)
class Topic(Generic[Req]):
    """A topic template carrying the payload model it transports.

    ``payload`` is the model of what the topic carries, or None for opaque bytes (camera
    frames); :class:`Operation` adds a reply model for request/reply.
    """

    template: str
    payload: type[Req] | None
    description: str = ""
    params: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not self.template or self.template.startswith("$"):
            raise TopicError(f"bad topic template {self.template!r}")
        names: list[str] = []
        for level in self.template.split("/"):
            if not level:
                raise TopicError(f"empty level in topic template {self.template!r}")
            if "{" in level or "}" in level:
                match = _PLACEHOLDER.match(level)
                if match is None:
                    raise TopicError(
                        f"placeholder must fill a whole level in {self.template!r}: {level!r}"
                    )
                names.append(match.group(1))
            elif "+" in level or "#" in level:
                raise TopicError(f"wildcard in topic template {self.template!r}")
        if len(set(names)) != len(names):
            raise TopicError(f"repeated placeholder in {self.template!r}")
        object.__setattr__(self, "params", tuple(names))

    @property
    def filter(self) -> str:
        """The subscription filter: every placeholder becomes ``+``."""
        return self.filter_for()

    def filter_for(self, **values: Any) -> str:
        """A subscription filter with the placeholders in ``values`` filled in and the others
        ``+``: ``MIRROR_DISPLAY.filter_for(mirror_id="hall")`` is ``mirrors/hall/display``."""
        extra = values.keys() - set(self.params)
        if extra:
            raise TopicError(f"{self.template}: unexpected {sorted(extra)}")
        levels = []
        for level in self.template.split("/"):
            match = _PLACEHOLDER.match(level)
            if match is None:
                levels.append(level)
            elif match.group(1) in values:
                levels.append(_check_level_value(match.group(1), str(values[match.group(1)])))
            else:
                levels.append("+")
        return "/".join(levels)

    def format(self, **values: Any) -> str:
        """The concrete topic for ``values``; every placeholder must be given."""
        missing = set(self.params) - values.keys()
        extra = values.keys() - set(self.params)
        if missing or extra:
            raise TopicError(
                f"{self.template}: missing {sorted(missing)} unexpected {sorted(extra)}"
            )
        return self.template.format(
            **{k: _check_level_value(k, str(v)) for k, v in values.items()}
        )

    def parse(self, topic: str) -> dict[str, str] | None:
        """The placeholder values of a concrete ``topic``, or None when it does not match."""
        levels = topic.split("/")
        pattern = self.template.split("/")
        if len(levels) != len(pattern):
            return None
        values: dict[str, str] = {}
        for level, want in zip(levels, pattern, strict=True):
            match = _PLACEHOLDER.match(want)
            if match:
                values[match.group(1)] = level
            elif level != want:
                return None
        return values


@dataclass(frozen=True)
class Operation(Topic[Req], Generic[Req, Rep]):
    """A request/reply topic: ``payload`` is the request body, ``reply`` the success body."""

    reply: type[Rep] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.payload is None or self.reply is None:
            raise TopicError(f"operation {self.template!r} needs request and reply models")
