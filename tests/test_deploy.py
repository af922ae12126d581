"""The container files agree with the code: the image holds every package, compose runs every
service. (No container engine runs here, so these read the files; they do not build.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from broker.access import MIRROR_PUBLISHES
from mirrorhub.cli import SERVICES

ROOT = Path(__file__).resolve().parents[1]


def test_the_image_copies_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in
                project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", (ROOT / "Dockerfile").read_text(), re.M))
    assert copied == packages


def test_compose_runs_every_service_with_its_own_database() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for service in SERVICES:
        assert compose[service]["command"] == ["service", service]
        url = compose[service]["environment"][f"MIRRORHUB_{service.upper()}_DATABASE_URL"]
        assert url.endswith(f"/{service}")
    created = set(re.findall(r"CREATE DATABASE (\w+)",
                             (ROOT / "deploy/postgres-init.sql").read_text()))
    assert created | {compose["postgres"]["environment"]["POSTGRES_DB"]} == set(SERVICES)
    assert compose["bridge"]["command"] == ["bridge"]


def test_the_mirrors_acl_is_broker_access_and_the_docs_show_it() -> None:
    acl = (ROOT / "deploy/mosquitto-mirrors.acl").read_text()
    rules = [line for line in acl.splitlines() if line and not line.startswith("#")]
    writes = {line.removeprefix("pattern write mirrors/%u/") for line in rules
              if line.startswith("pattern write ")}
    assert writes == MIRROR_PUBLISHES
    assert set(rules) - {f"pattern write mirrors/%u/{name}" for name in writes} == {
        "pattern read mirrors/%u/#", "pattern read reply/%c"}
    docs = (ROOT / "docs/operations.md").read_text()
    assert "\n".join(rules) in docs
    fleet = (ROOT / "deploy/mosquitto-fleet.conf").read_text()
    assert "acl_file /mosquitto/config/mirrors.acl" in fleet
