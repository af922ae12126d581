"""The roles a process can play, alone (``mirrorhub broker``) or together (``mirrorhub up``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from bridge.app import create_app
from bridge.server import serving
from broker.metrics import serve_metrics
from broker.server import EmbeddedBroker, ensure_port_free
from mirrorhub.settings import Settings
from services.auth.config import AuthSettings
from services.auth.service import run_auth
from services.messaging.config import MessagingSettings
from services.messaging.service import run_messaging
from services.vision.config import VisionSettings
from services.vision.service import run_vision

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def embedded_broker(settings: Settings) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(
        settings.broker_host, settings.broker_port,
        accounts=settings.accounts(), allow_anonymous=settings.allow_anonymous,
        devices_file=settings.devices_file, namespace=settings.namespace,
        tls_cert=settings.listeners.tls_cert, tls_key=settings.listeners.tls_key,
        tls_port=settings.listeners.tls_port, ws_port=settings.listeners.ws_port,
        wss_port=settings.listeners.wss_port,
    ) as broker:
        yield broker


@contextlib.asynccontextmanager
async def services(settings: Settings, broker_port: int | None = None) -> AsyncIterator[None]:
    """Every service, connected to the broker (embedded on ``broker_port`` when given)."""
    auth = AuthSettings.from_env(settings.data_dir)
    vision = VisionSettings.from_env(settings.data_dir)
    messaging = MessagingSettings.from_env(settings.data_dir)
    async with (
        run_auth(settings.bus("auth", broker_port), auth),
        run_vision(settings.bus("vision", broker_port), vision),
        run_messaging(settings.bus("messaging", broker_port), messaging),
    ):
        yield


async def serve_bridge(settings: Settings, broker_port: int | None = None) -> None:
    ensure_port_free(settings.bridge_host, settings.bridge_port, "MIRRORHUB_BRIDGE_PORT")
    app = create_app(settings.bus("bridge", broker_port), require_token=settings.require_token,
                     cookie_secure=settings.cookie_secure, max_upload=settings.max_upload,
                     metrics_token=settings.metrics_token)
    async with serving(app, settings.bridge_host, settings.bridge_port, log_level="info",
                       trusted_proxies=settings.trusted_proxies,
                       own_logging=settings.log_format == "text") as srv:
        while not srv.should_exit:  # uvicorn sets it on SIGINT/SIGTERM
            await asyncio.sleep(0.2)


def metrics_endpoint(settings: Settings) -> contextlib.AbstractContextManager[int | None]:
    """This process's own ``/metrics`` on ``MIRRORHUB_METRICS_PORT``, when it is set: how a
    role running apart (a service has no HTTP side) is scraped."""
    if settings.metrics_port is not None:
        ensure_port_free(settings.metrics_host, settings.metrics_port, "MIRRORHUB_METRICS_PORT")
    return serve_metrics(settings.metrics_host, settings.metrics_port)


async def bridge_only(settings: Settings) -> None:
    with metrics_endpoint(settings):
        await serve_bridge(settings)


async def up(settings: Settings) -> None:
    """Broker (unless an external one is configured), all services and the bridge."""
    # Say a port is taken before anything starts, not after the services are up.
    ensure_port_free(settings.bridge_host, settings.bridge_port, "MIRRORHUB_BRIDGE_PORT")
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(metrics_endpoint(settings))
        port = None
        if settings.external_broker is None:
            broker = await stack.enter_async_context(embedded_broker(settings))
            port = broker.port
            log.info("embedded MQTT broker on %s:%d (accounts in %s)", broker.host, port,
                     settings.accounts_file)
        else:
            log.info("using the MQTT broker at %s", settings.external_broker)
        await stack.enter_async_context(services(settings, port))
        log.info("bridge on http://%s:%d", settings.bridge_host, settings.bridge_port)
        await serve_bridge(settings, port)


async def broker_only(settings: Settings) -> None:
    with metrics_endpoint(settings):
        async with embedded_broker(settings):
            await asyncio.Event().wait()


def _service(settings: Settings, name: str) -> contextlib.AbstractAsyncContextManager[object]:
    if name == "auth":
        return run_auth(settings.bus("auth"), AuthSettings.from_env(settings.data_dir))
    if name == "vision":
        return run_vision(settings.bus("vision"), VisionSettings.from_env(settings.data_dir))
    if name == "messaging":
        return run_messaging(settings.bus("messaging"),
                             MessagingSettings.from_env(settings.data_dir))
    raise ValueError(f"no service called {name!r}")


async def service_only(settings: Settings, name: str) -> None:
    with metrics_endpoint(settings):
        async with _service(settings, name):
            await asyncio.Event().wait()
