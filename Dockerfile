# One image for every mirrorhub role; the command picks it (`service auth`, `bridge`, `up`, ...).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only the packages named in pyproject.toml: the context's .venv, data/ and tests stay out.
COPY pyproject.toml ./
COPY mirrorhub/ mirrorhub/
COPY broker/ broker/
COPY schemas/ schemas/
COPY services/ services/
COPY bridge/ bridge/
COPY devices/ devices/
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin mirrorhub \
    && mkdir -p /data && chown mirrorhub:mirrorhub /data
USER mirrorhub
WORKDIR /data

# Inside a container, loopback is reachable from nowhere: listen on every interface.
ENV MIRRORHUB_DATA_DIR=/data \
    MIRRORHUB_BRIDGE_HOST=0.0.0.0 \
    MIRRORHUB_BROKER_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8000 1883

ENTRYPOINT ["mirrorhub"]
CMD ["up"]
