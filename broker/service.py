"""A service is one declaration: what it answers, what it listens to, what it says.

::

    AUTH = Service(
        "auth",
        handlers=(
            Handler(AUTH_REGISTER, Accounts.register),   # Operation[Req, Rep] -> method
            Handler(AUTH_LOGIN, Accounts.login),
        ),
        listeners=(Listener(VISION_ENROLLED, Faces.on_enrolled),),
        tasks=(FrameWorker.run,),
        publishes=(VISION_ENROLLED,),
    )

    async with AUTH.serve(bus, accounts):   # binds each method to the part that has it
        ...

The table is a module-level value that needs nothing running to be read: the tests list it,
and ``mirrorhub asyncapi`` writes docs/asyncapi.yaml from the declarations of every service.
A method named in it is bound, when the service starts, to the one part given to
:meth:`Service.serve` whose class defines it; a plain function is called as it is.

:meth:`Service.serve` subscribes every row before the bus connects (what a persistent session
kept while the service was away must find its handler), connects, and runs the service's
``tasks`` under one :class:`asyncio.TaskGroup` that owns them: a task that dies takes the
service down with its error instead of failing silently. Handlers receive a topic's path
parameters as keyword arguments, listeners in :attr:`broker.client.Message.params`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from broker.access import namespaced_client_id
from broker.client import Bus, Message
from broker.protocol import Will
from broker.runner import DEFAULT_MAX_PAYLOAD, Answer, ServiceRunner, Unavailable
from broker.settings import BusSettings
from schemas.service import REJECTED, SERVICE_STATUS, ServiceStatus
from schemas.topics import Operation, Topic

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Handler(Generic[Req, Rep]):
    """One request operation and the coroutine that answers it: a method of one of the
    service's parts (``Accounts.login``) or a plain function."""

    operation: Operation[Req, Rep]
    func: Callable[[Any, Req], Awaitable[Rep]] | Callable[[Req], Awaitable[Rep]]
    # 1 for operations whose requests the broker should keep while the service is away (with a
    # persistent session); the handler must then be idempotent, since QoS 1 may deliver twice.
    qos: int = 0


@dataclass(frozen=True)
class Listener(Generic[T]):
    """An event topic the service follows, and the coroutine that takes each message.

    ``shared`` splits the messages between the instances of the service (``$share``)."""

    topic: Topic[T]
    func: Callable[[Any, Message], Awaitable[None]] | Callable[[Message], Awaitable[None]]
    qos: int = 1
    shared: bool = False


Task = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Service:
    """A service's whole contract with the bus (see the module docstring)."""

    name: str
    handlers: tuple[Handler[Any, Any], ...] = ()
    listeners: tuple[Listener[Any], ...] = ()
    # Long-running loops, each a method of one part, run for as long as the service.
    tasks: tuple[Task, ...] = ()
    # Events the service publishes besides its replies (for the AsyncAPI document).
    publishes: tuple[Topic[Any], ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for topic in self.topics_heard():
            if topic.template in seen:
                raise ValueError(f"{self.name}: topic {topic.template} is registered twice")
            seen.add(topic.template)
        prefix = f"svc/{self.name}/"
        for handler in self.handlers:
            if not handler.operation.template.startswith(prefix):
                raise ValueError(f"{self.name} cannot answer {handler.operation.template}: "
                                 f"its operations live under {prefix}")

    def topics_heard(self) -> list[Topic[Any]]:
        """Every topic the service subscribes to: its operations, then its listeners'."""
        return [h.operation for h in self.handlers] + [lst.topic for lst in self.listeners]

    def topics_said(self) -> list[Topic[Any]]:
        """Every topic the service publishes on, replies aside: what it declares, and its
        status and rejections (every service's)."""
        return [*self.publishes, SERVICE_STATUS, REJECTED]

    @contextlib.asynccontextmanager
    async def serve(self, bus: Bus, *parts: object, max_payload: int = DEFAULT_MAX_PAYLOAD,
                    unavailable: Unavailable | None = None) -> AsyncIterator[None]:
        """Subscribe every row, connect ``bus`` and run the tasks until the context exits.
        ``unavailable`` tells a handler's failures that mean a dependency is away
        (:class:`broker.runner.ServiceRunner`)."""
        answers = [Answer(h.operation, bind(h.func, parts), h.qos) for h in self.handlers]
        listeners = [(lst, bind(lst.func, parts)) for lst in self.listeners]
        loops = [bind(task, parts) for task in self.tasks]
        for listener, func in listeners:
            await bus.subscribe(listener.topic, func, qos=listener.qos, shared=listener.shared)
        async with ServiceRunner(bus, self.name, answers, max_payload=max_payload,
                                 unavailable=unavailable), bus:
            failure: BaseException | None = None
            async with asyncio.TaskGroup() as group:
                running = [group.create_task(loop(), name=f"{self.name}:{loop.__name__}")
                           for loop in loops]
                try:
                    yield
                except BaseException as exc:
                    # The caller's error, raised again as it is once the tasks have stopped:
                    # through the TaskGroup it would come out wrapped in an ExceptionGroup.
                    failure = exc
                finally:
                    for task in running:
                        task.cancel()
            if failure is not None:
                raise failure


def bind(func: Callable[..., Any], parts: tuple[object, ...]) -> Callable[..., Any]:
    """``func`` bound to the one part whose class defines it, or ``func`` itself when it is a
    plain function; a method that no part (or more than one) has is a mistake found here, at
    start-up."""
    name = func.__name__
    owner = func.__qualname__.rpartition(".")[0]
    if not owner or owner.endswith("<locals>"):
        return func
    owners = [part for part in parts if getattr(type(part), name, None) is func]
    if len(owners) != 1:
        raise ValueError(f"{func.__qualname__} needs exactly one part to run on, "
                         f"found {len(owners)} among {[type(p).__name__ for p in parts]}")
    bound: Callable[..., Any] = getattr(owners[0], name)
    return bound


def persistent_client_id(settings: BusSettings, name: str) -> str:
    """A client id that stays the same across restarts (so the broker keeps the session), and
    differs between deployments sharing a broker through their namespaces."""
    return namespaced_client_id(settings.namespace, name)


def service_bus(settings: BusSettings, service: str, *, instance: str | None = None) -> Bus:
    """A Bus for one instance of ``service``: ``online`` on every connect, ``offline`` on a clean
    close and, as the Last Will, when the process vanishes, all retained on
    ``events/{service}/status``, so that whoever subscribes later (the admin page) hears the
    service's latest word at once.

    Instances of one service share that retained topic: when one goes offline while another
    still runs, the one still running hears it and says ``online`` again, so that the retained
    word is not "offline" while the service is up.

    With ``instance`` the Bus has a persistent session under a stable client id
    (``{service}-{instance}``): QoS 1 requests published while it is away wait at the broker.
    """
    if instance is None:
        client_id = f"{service}-{uuid.uuid4().hex[:12]}"
    else:
        client_id = persistent_client_id(settings, f"{service}-{instance}")
    offline = ServiceStatus(client_id=client_id, state="offline").model_dump_json()
    bus = Bus(settings, client_id=client_id, role=service,
              will=Will(SERVICE_STATUS.format(service=service), offline, qos=1, retain=True),
              clean_session=instance is None)
    online_body = ServiceStatus(client_id=client_id, state="online")
    heard: list[bool] = []  # whether this Bus follows its service's status yet

    async def others(message: Message) -> None:
        """Another instance went offline: the retained word is to be this one's again."""
        try:
            status = ServiceStatus.model_validate_json(message.payload)
        except ValueError:
            return
        if status.client_id != client_id and status.state == "offline" and bus.connected:
            await bus.publish(SERVICE_STATUS, online_body, retain=True, service=service)

    async def online() -> None:
        await bus.publish(SERVICE_STATUS, online_body, retain=True, service=service)
        if not heard:  # once: the Bus subscribes again by itself after a reconnect
            heard.append(True)
            await bus.subscribe(SERVICE_STATUS, others, service=service)

    async def closing() -> None:
        await bus.publish(SERVICE_STATUS, offline, retain=True, service=service)

    bus.on_connect(online)
    bus.on_close(closing)
    return bus
