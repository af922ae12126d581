"""A simulated smart mirror: what the services see of a real one, on the real broker.

::

    async with Mirror(settings, "hall", "MX-200", output=print) as mirror:
        await mirror.stream_frames(FrameFolder.open("faces/"), fps=2, loop=False)
        shown = await mirror.wait_display(lambda d: d.state == "present", timeout=10)

On the wire the mirror

* keeps ``mirrors/{id}/status`` true: its Last Will is a retained ``offline`` (QoS 1), every
  (re)connection publishes retained ``online``, a clean exit publishes retained ``offline``;
* publishes its model code and widget state, retained, to ``mirrors/{id}/widgets`` on every
  (re)connection, before ``online``, so whoever reacts to ``online`` already knows the model;
* sends camera frames, raw, to ``mirrors/{id}/frame`` at QoS 0 (a lost frame is replaced by the
  next one soon, as with a real camera);
* listens to ``mirrors/{id}/display`` and ``mirrors/{id}/events/face``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError

from broker.access import namespaced_client_id
from broker.client import Bus, Message
from broker.protocol import Will
from broker.settings import BusSettings
from devices.frames import FrameFolder, check_count, check_fps, play
from schemas.errors import BusUnavailable, ConfigError
from schemas.messaging import MIRROR_DISPLAY, MIRROR_STATUS, MIRROR_WIDGETS, Display, MirrorWidgets
from schemas.names import check_mirror_id
from schemas.vision import MIRROR_FACE_EVENT, MIRROR_FRAME, FaceEvent

log = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
DEFAULT_WIDGETS: Mapping[str, Any] = {"time": {"format": "24h", "timezone": "UTC"}}
_MESSAGE_CHARS = 60  # of each message's content on a human-readable display line


def check_model_code(model_code: str) -> str:
    """The model code as the widgets topic carries it (stripped, 1 to 64 characters)."""
    try:
        code = MirrorWidgets(model_code=model_code).model_code
    except ValidationError as exc:
        raise ConfigError(f"model code {model_code!r}: {exc.errors()[0]['msg']}") from exc
    assert code is not None
    return code


def describe(display: Display) -> str:
    """One human-readable line: time, mirror, state and user, layout by position, messages.

    ``12:00:03 hall: present ann | time(1,1) weather(1,2) | 1 message: bob: see you at 6``

    A person whose face does not unlock their messages (not enrolled with their token) reads
    ``present ann (greeted only) | ... | 0 messages``.
    """
    who = f"{display.state} {display.user}" if display.user else display.state
    if display.user and not display.unlocked:
        who += " (greeted only)"
    cells = sorted(display.layout.items(), key=lambda item: item[1])
    layout = " ".join(f"{name}({row},{column})" for name, (row, column) in cells) or "no widgets"
    count = len(display.messages)
    said = "; ".join(f"{m.sender}: {_one_line(m.content)}" for m in display.messages)
    messages = f"{count} message{'' if count == 1 else 's'}" + (f": {said}" if said else "")
    return f"{display.at:%H:%M:%S} {display.mirror_id}: {who} | {layout} | {messages}"


def as_json(display: Display) -> str:
    """The display as one line of JSON, exactly the fields of :class:`Display`."""
    return display.model_dump_json()


def _seen(event: FaceEvent) -> str:
    if event.error is not None:
        return f"nothing: {event.error.message}"
    names = [face.name for face in event.faces if face.name is not None]
    unknown = len(event.faces) - len(names)
    seen = ", ".join(names + ([f"{unknown} unknown"] if unknown else [])) or "nobody"
    # A head-turn challenge (docs/vision.md, Liveness) is the mirror's to show its user.
    prompts = [face.challenge for face in event.faces if face.challenge is not None]
    return seen + "".join(f"; asks: {prompt}" for prompt in prompts)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS - 1] + "…"


class Mirror:
    """One mirror on the bus (see the module docstring for what it publishes and hears).

    Every display it is told is kept (:attr:`display`), handed to ``on_display`` as it is (the
    fleet generator checks it there) and to ``output`` as one line made by ``render``
    (:func:`describe`, or :func:`as_json` for programs); ``output`` None keeps quiet. Bad
    ``mirror_id`` or ``model_code`` raise :class:`~schemas.errors.ConfigError`.
    """

    def __init__(
        self,
        settings: BusSettings,
        mirror_id: str,
        model_code: str,
        *,
        output: Callable[[str], object] | None = None,
        render: Callable[[Display], str] = describe,
        widgets: Mapping[str, Any] = DEFAULT_WIDGETS,
        on_display: Callable[[Display], object] | None = None,
    ) -> None:
        self.mirror_id = check_mirror_id(mirror_id)
        self.model_code = check_model_code(model_code)
        self.widgets = MirrorWidgets(model_code=self.model_code, widgets=dict(widgets))
        self.status_topic = MIRROR_STATUS.format(mirror_id=mirror_id)
        self._output = output
        self._render = render
        self._on_display_hook = on_display
        # The client id is the mirror id: a mirror's own account may use no other
        # (broker.access), and its replies come back on reply/{mirror id}.
        self._bus = Bus(settings, client_id=namespaced_client_id(settings.namespace, mirror_id),
                        will=Will(self.status_topic, OFFLINE, qos=1, retain=True))
        self._bus.on_connect(self._announce)
        self._bus.on_close(self._goodbye)
        self._display: Display | None = None
        self._face_event: FaceEvent | None = None
        self._waiters: list[tuple[Callable[[Display], bool], asyncio.Future[Display]]] = []
        self._announced = asyncio.Event()
        self._settings = settings
        self.frames_sent = 0  # by stream_frames, over the mirror's life

    async def __aenter__(self) -> Self:
        # Subscribed before connecting, so a retained display arrives with the first connection.
        await self._bus.subscribe(MIRROR_DISPLAY, self._on_display, qos=1,
                                  mirror_id=self.mirror_id)
        await self._bus.subscribe(MIRROR_FACE_EVENT, self._on_face_event, qos=0,
                                  mirror_id=self.mirror_id)
        await self._bus.__aenter__()
        # Entered means online: nothing (a frame, a test's fresh subscriber) comes before it.
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                await self._announced.wait()
        except TimeoutError:
            await self._bus.__aexit__(None, None, None)
            raise BusUnavailable(f"mirror {self.mirror_id} could not say it is online at "
                                 f"{self._settings.url}") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._bus.__aexit__(*exc_info)
        for _, future in self._waiters:
            future.cancel()

    @property
    def display(self) -> Display | None:
        """The last display this mirror was told to show, None before the first."""
        return self._display

    @property
    def face_event(self) -> FaceEvent | None:
        """What the vision service last saw in this mirror's frames."""
        return self._face_event

    async def wait_display(
        self, predicate: Callable[[Display], bool] = lambda _: True, timeout: float = 5.0
    ) -> Display:
        """The current display if ``predicate`` holds for it, else the next one for which it
        does; :class:`TimeoutError` after ``timeout`` seconds."""
        if self._display is not None and predicate(self._display):
            return self._display
        future: asyncio.Future[Display] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.remove(waiter)

    async def stream_frames(
        self, frames: FrameFolder, fps: float, *, loop: bool = True, count: int | None = None
    ) -> int:
        """Send the folder's images as camera frames (see :func:`devices.frames.play` for
        ``fps``, ``loop`` and ``count``) and return how many were sent. Frames due while the
        broker is unreachable are skipped, as a camera would."""
        sent = 0
        async with contextlib.aclosing(play(frames, fps, loop=loop, count=count)) as playing:
            async for path, data in playing:
                try:
                    await self._bus.publish(MIRROR_FRAME, data, qos=0, mirror_id=self.mirror_id)
                except BusUnavailable:
                    log.debug("mirror %s: frame %s skipped, no broker", self.mirror_id, path.name)
                    continue
                sent += 1
                self.frames_sent += 1
        return sent

    async def _announce(self) -> None:
        try:
            await self._bus.publish(MIRROR_WIDGETS, self.widgets, qos=1, retain=True,
                                    mirror_id=self.mirror_id)
            await self._bus.publish(MIRROR_STATUS, ONLINE, qos=1, retain=True,
                                    mirror_id=self.mirror_id)
            self._announced.set()
        except BusUnavailable as exc:
            # The connection dropped again; the next one announces anew.
            log.warning("mirror %s: could not announce itself: %s", self.mirror_id, exc)

    async def _goodbye(self) -> None:
        await self._bus.publish(MIRROR_STATUS, OFFLINE, qos=1, retain=True,
                                mirror_id=self.mirror_id)

    async def _on_display(self, message: Message) -> None:
        if not message.payload:
            return  # somebody cleared the retained display
        try:
            display = Display.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("mirror %s: ignored a display that is not a Display: %s",
                        self.mirror_id, exc.errors()[0]["msg"])
            return
        self._display = display
        if self._on_display_hook is not None:
            self._on_display_hook(display)
        if self._output is not None:
            self._output(self._render(display))
        for predicate, future in self._waiters:
            if not future.done() and predicate(display):
                future.set_result(display)

    async def _on_face_event(self, message: Message) -> None:
        try:
            event = FaceEvent.model_validate_json(message.payload)
        except ValidationError:
            log.warning("mirror %s: ignored a malformed face event", self.mirror_id)
            return
        previous, self._face_event = self._face_event, event
        # At a few events a second, only a change is worth a line of the log.
        changed = previous is None or _seen(previous) != _seen(event)
        log.log(logging.INFO if changed else logging.DEBUG, "mirror %s sees %s",
                self.mirror_id, _seen(event))


@dataclass(frozen=True)
class Simulation:
    """What ``mirrorhub mirror`` was asked to do; build it with :meth:`checked`."""

    mirror_id: str
    model_code: str
    frames: FrameFolder | None
    fps: float
    loop: bool
    count: int | None
    render: Callable[[Display], str]

    @classmethod
    def checked(
        cls,
        mirror_id: str,
        model_code: str,
        *,
        frames: Path | str | None = None,
        fps: float = 2.0,
        loop: bool = True,
        count: int | None = None,
        json: bool = False,
    ) -> Simulation:
        """Check everything before anything connects: each bad value is a
        :class:`~schemas.errors.ConfigError` saying which (the CLI's exit code 2)."""
        return cls(
            mirror_id=check_mirror_id(mirror_id),
            model_code=check_model_code(model_code),
            frames=FrameFolder.open(frames) if frames is not None else None,
            fps=check_fps(fps),
            loop=loop,
            count=check_count(count),
            render=as_json if json else describe,
        )

    async def run(self, settings: BusSettings) -> None:
        """Be the mirror until SIGINT or SIGTERM, printing each display on stdout; the frames,
        if any, are sent meanwhile (after the last one the mirror stays, showing displays)."""
        stop = asyncio.Event()
        signals = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signals.add_signal_handler(signum, stop.set)
        try:
            async with Mirror(settings, self.mirror_id, self.model_code, output=_print_line,
                              render=self.render) as mirror:
                log.info("mirror %s (model %s) is online at %s; Ctrl-C stops it",
                         self.mirror_id, self.model_code, settings.url)
                await self._until(stop, mirror)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signals.remove_signal_handler(signum)

    async def _until(self, stop: asyncio.Event, mirror: Mirror) -> None:
        stopped = asyncio.create_task(stop.wait())
        running: set[asyncio.Task[Any]] = {stopped}
        streaming: asyncio.Task[int] | None = None
        if self.frames is not None:
            streaming = asyncio.create_task(
                mirror.stream_frames(self.frames, self.fps, loop=self.loop, count=self.count))
            running.add(streaming)
        try:
            while not stopped.done():
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                if streaming in done:
                    running.discard(streaming)
                    sent = streaming.result()  # a frame that cannot be read ends the run
                    log.info("mirror %s sent %d frames; it stays until stopped",
                             self.mirror_id, sent)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


def _print_line(line: str) -> None:
    # Flushed line by line: whoever reads a pipe sees each display when it happens.
    print(line, flush=True)
