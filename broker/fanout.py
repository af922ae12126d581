"""amqtt's fan-out, looked up instead of walked: what lets the embedded broker hold 1,000 mirrors.

amqtt 0.12.1 keeps subscriptions as one table, topic filter -> [(session, qos)], and

* matches every message against every filter in the table (a mirror's own filters, such as
  ``mirrors/hall-1/display``, included), so a message costs as many matches as there are
  subscriptions in the whole broker;
* replays retained messages to a new subscription by matching every retained topic against
  the filter, formatting a debug line for each whether or not debug is on;
* formats the whole table into a debug line (``repr``) on every SUBSCRIBE, debug on or off;
* keeps a filter in the table, an empty list, after its last subscriber unsubscribed;
* sends a client one copy of a message for each of its filters that matches it. Here it gets
  one, at the highest QoS of those filters, as from Mosquitto.

With N mirrors each of those is O(N) a message or a subscription, so a fleet connecting took
O(N²): at 1,000 mirrors the embedded broker accepted about 11 connections a second and its
services lost the broker while the fleet came online (bench/README.md, fleet_cost). Here
:class:`Subscriptions` keeps the filters with wildcards apart, so a message is looked up by
its topic among the exact filters and matched only against the wildcard ones (the services'
``mirrors/+/frame`` and such), and a subscription to an exact filter finds its retained
message by name. :class:`IndexedFanOut` is the broker's side of it.

A walk of the table hands out copies (of the filters, and of each filter's subscribers), so a
client that subscribes or unsubscribes while a message is being delivered changes neither
that delivery nor the walk (amqtt's own walk broke with "dictionary changed size during
iteration" and the message reached only some of its subscribers).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from amqtt.contexts import Action
from amqtt.mqtt.constants import QOS_0
from amqtt.session import Session

Holders = list[tuple[Session, int]]


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class Snapshots(dict[str, Holders]):
    """amqtt's subscription table (topic filter -> [(session, qos)]), walked over copies: of
    the filters, and of each filter's subscribers."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> list[tuple[str, Holders]]:  # type: ignore[override]
        return [(topic_filter, list(holders)) for topic_filter, holders in super().items()]


class Subscriptions(Snapshots):
    """:class:`Snapshots` with its wildcard filters indexed, and a ``repr`` that does not print
    the table."""

    def __init__(self) -> None:
        super().__init__()
        self.wildcards: dict[str, None] = {}  # an ordered set: the filters with + or #

    def __setitem__(self, topic_filter: str, holders: Holders) -> None:
        super().__setitem__(topic_filter, holders)
        if has_wildcard(topic_filter):
            self.wildcards[topic_filter] = None

    def __delitem__(self, topic_filter: str) -> None:
        super().__delitem__(topic_filter)
        self.wildcards.pop(topic_filter, None)

    def clear(self) -> None:
        super().clear()
        self.wildcards.clear()

    def __repr__(self) -> str:
        return f"<{len(self)} topic filters, {len(self.wildcards)} with wildcards>"

    def matching(self, topic: str, matches: Callable[[str, str], bool]) -> list[Holders]:
        """Copies of the subscriber lists of every filter that ``topic`` matches: its exact
        filter, looked up, and each wildcard filter for which ``matches(topic, filter)``."""
        found = []
        exact = self.get(topic)
        if exact:
            found.append(list(exact))
        for topic_filter in self.wildcards:
            holders = self.get(topic_filter)
            if holders and matches(topic, topic_filter):
                found.append(list(holders))
        return found

    def holds(self, topic_filter: str, client_id: str) -> bool:
        return any(holder.client_id == client_id for holder, _ in self.get(topic_filter, ()))


class IndexedFanOut:
    """The parts of :class:`amqtt.broker.Broker` that walk the subscription table, on
    :class:`Subscriptions` (mixed into the broker: ``class _Broker(IndexedFanOut, Broker)``).

    Retained messages are replayed for a session's own filters only: amqtt, when a client
    connects, replays them for every filter in the broker, so any client would receive
    retained messages it never subscribed to (another mirror's display, say), and short-lived
    clients dropped the connection over the unsolicited QoS 1 publishes.
    """

    _subscriptions: Subscriptions
    _retained_messages: dict[str, Any]
    _broadcast_queue: Any

    if TYPE_CHECKING:  # amqtt's, which the broker this is mixed into has
        def _matches(self, topic: str, a_filter: str) -> bool: ...
        def _get_handler(self, session: Session) -> Any: ...
        async def _topic_filtering(self, session: Session, topic: str,
                                   action: Action) -> bool: ...
        async def _retain_broadcast_message(self, broadcast: dict[str, Any], qos: int,
                                            target_session: Session) -> None: ...

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        broadcast = await self._broadcast_queue.get()
        topic, data = broadcast["topic"], broadcast["data"]
        # One copy a session, at the highest QoS of its filters that match, as Mosquitto does
        # (MQTT-3.3.5-1): amqtt sent one a filter, so a client whose filters overlap (``#``
        # and ``mirrors/+/status``) received the message twice.
        targets: dict[int, tuple[Session, int]] = {}
        for holders in self._subscriptions.matching(topic, self._matches):
            for session, subscribed_qos in holders:
                held = targets.get(id(session))
                if held is None or subscribed_qos > held[1]:
                    targets[id(session)] = (session, subscribed_qos)
        for target, subscribed_qos in targets.values():
            qos = broadcast.get("qos", subscribed_qos)
            if not await self._topic_filtering(target, topic, Action.RECEIVE):
                continue
            if target.transitions.state != "connected":
                # Kept for a persistent session that is away, at QoS 1 and 2 [MQTT-3.1.2.4],
                # as amqtt keeps them; an anonymous client is promised nothing.
                if not target.clean_session and qos > QOS_0 and not target.is_anonymous:
                    await self._retain_broadcast_message(broadcast, qos, target)
                continue
            handler = self._get_handler(target)
            if handler:
                running_tasks.append(asyncio.ensure_future(
                    handler.mqtt_publish(topic, data, qos, retain=False)))

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        if handler is None or not self._subscriptions.holds(topic_filter, session.client_id):
            return
        if has_wildcard(topic_filter):
            retained = [message for topic, message in list(self._retained_messages.items())
                        if self._matches(topic, topic_filter)]
        else:
            found = self._retained_messages.get(topic_filter)
            retained = [found] if found is not None else []
        if retained:
            await asyncio.wait([asyncio.ensure_future(handler.mqtt_publish(
                message.topic, message.data, min(qos, message.qos or qos), retain=True))
                for message in retained])

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        holders = self._subscriptions.get(a_filter)
        if holders is None:
            return 0
        for index, (holder, _) in enumerate(holders):
            if holder.client_id == session.client_id:
                del holders[index]
                if not holders:  # amqtt kept the empty filter for ever
                    del self._subscriptions[a_filter]
                return 1
        return 0

    async def _del_all_subscriptions(self, session: Session) -> None:
        for topic_filter in self._subscriptions:  # a snapshot: filters go as they empty
            self._del_subscription(topic_filter, session)
