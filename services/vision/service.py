"""Running the vision service: engine, database, gallery, handler table, gallery sync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from broker.metrics import GALLERY, QUEUE_DEPTH
from broker.service import service_bus
from broker.settings import BusSettings
from services.database import open_database, server_away
from services.tombstones import Cursor, Tombstones
from services.vision.accounts import FaceAccounts
from services.vision.analysis import Analysis, open_spoof_model, worker_pool
from services.vision.challenges import Challenges, load_secret
from services.vision.config import VisionSettings
from services.vision.crops import forget_crops
from services.vision.engine import FaceEngine
from services.vision.faces import Faces
from services.vision.frames import FrameWorker
from services.vision.handlers import VISION
from services.vision.images import ImageLimits
from services.vision.matcher import Gallery
from services.vision.measures import Measures
from services.vision.models import DeletionCursor
from services.vision.recognitions import Recognitions
from services.vision.subjects import Subjects
from services.vision.verification import Verifier

log = logging.getLogger(__name__)

# base64 grows an image by 4/3; the envelope adds a little.
_ENVELOPE_SLACK = 4096


@contextlib.asynccontextmanager
async def run_vision(
    bus_settings: BusSettings, settings: VisionSettings, engine: FaceEngine | None = None
) -> AsyncIterator[Faces]:
    """Serve ``svc/vision/*`` and mirrors' frames until the context exits, with the engine the
    settings name unless one is given."""
    own_engine = engine is None  # worker processes can only make the settings' engine
    challenges = Challenges(load_secret(settings.liveness_secret, settings.data_dir),
                            settings.liveness_ttl)
    engine = engine or settings.make_engine()
    await asyncio.to_thread(engine.__enter__)  # loads models: seconds, off the loop
    try:
        # Opened here even when worker processes judge the frames: a bad file stops the
        # service at once, with its one line, rather than failing every worker.
        spoof = await asyncio.to_thread(open_spoof_model, settings.liveness_model)
        gallery = Gallery(engine.dimension, settings.threshold or engine.threshold)
        limits = ImageLimits(max_bytes=settings.max_image_bytes)
        async with (
            contextlib.AsyncExitStack() as stack,
            open_database(settings.database_url, "vision", "services.vision.models",
                          "services.vision.migrations"),
        ):
            pool = (await stack.enter_async_context(worker_pool(settings))
                    if settings.processes and own_engine else None)
            bus = service_bus(bus_settings, "vision")
            analysis = Analysis(engine, limits, pool, spoof)
            faces = Faces(engine, gallery, bus, limits, settings.cameras.default, analysis,
                          settings.keep_face_crops)
            measures = Measures(engine, settings.cameras, limits, analysis)
            recognitions = Recognitions(bus, settings.retention)
            frames = FrameWorker(faces, bus, settings.max_image_bytes, settings.tracks,
                                 recognitions)
            tombstones = Tombstones(bus, FaceAccounts(faces, recognitions),
                                    Cursor(DeletionCursor))
            stack.enter_context(GALLERY.sampling(lambda: len(gallery), bus.client_id))
            stack.enter_context(QUEUE_DEPTH.sampling(lambda: len(frames.queue), "frames",
                                                     bus.client_id))
            if not settings.keep_face_crops:
                await forget_crops()
            loaded = await faces.load()
            log.info("vision: %d embeddings of %s loaded", loaded, engine.model_version)
            max_payload = settings.max_image_bytes * 4 // 3 + _ENVELOPE_SLACK
            verifier = Verifier(analysis, gallery.threshold, challenges, bus)
            async with VISION.serve(bus, faces, measures, frames, tombstones,
                                    Subjects(faces, bus, recognitions), recognitions, verifier,
                                    max_payload=max_payload, unavailable=server_away):
                yield faces
    finally:
        engine.__exit__(None, None, None)
