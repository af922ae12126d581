"""A :class:`~broker.client.Bus`'s subscriptions, and which of them each message reaches.

Every message a Bus receives is matched against every subscription it holds (a service holds one
per operation and event it hears, twenty or so), and each match reads its topic's parameters
(``mirror_id``) from the topic. A few topics carry nearly every message (a service's busiest
operations, a mirror's frames), so the result is remembered per topic: adding or removing a
subscription forgets it all, and so does holding :data:`ROUTES_KEPT` topics (many mirrors'
frames), after which it is learnt again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from broker.protocol import topic_matches
from schemas.topics import Topic

ROUTES_KEPT = 4096


@dataclass(frozen=True)
class Message:
    """A received message; ``topic`` is without the namespace prefix, ``params`` holds the
    values of the subscribed :class:`Topic`'s placeholders (``{"mirror_id": "hall"}``)."""

    topic: str
    payload: bytes
    retain: bool = False
    params: dict[str, str] = field(default_factory=dict)


MessageCallback = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    filter: str  # as sent to the broker: namespaced, possibly "$share/<group>/..."
    callback: MessageCallback
    qos: int
    topic: Topic[Any] | None  # what to read the parameters from; None for raw filters


Route = tuple[Subscription, dict[str, str]]


class Subscriptions:
    """The subscriptions in the order they were made, and the routes of topics received."""

    def __init__(self) -> None:
        self._all: list[Subscription] = []
        self._routes: dict[str, tuple[Route, ...]] = {}

    def __iter__(self) -> Iterator[Subscription]:
        return iter(tuple(self._all))

    def add(self, sub: Subscription) -> None:
        self._all.append(sub)
        self._routes.clear()

    def remove(self, sub: Subscription) -> None:
        self._all.remove(sub)
        self._routes.clear()

    def routes(self, topic: str, local: str) -> tuple[Route, ...]:
        """The subscriptions the wire ``topic`` matches, each with the parameters it reads
        from ``local`` (the topic without the namespace). The dicts are shared: copy one
        before handing it on."""
        found = self._routes.get(topic)
        if found is None:
            found = tuple(
                (sub, (sub.topic.parse(local) if sub.topic is not None else None) or {})
                for sub in self._all if topic_matches(sub.filter, topic))
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
            self._routes[topic] = found
        return found
