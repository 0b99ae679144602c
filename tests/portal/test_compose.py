"""docker-compose.yml and .env.example stay in step with the settings (no Docker engine needed)."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat")
# env("NAME", ...) / env_bool("NAME", ...) as settings.py reads them, and plain os.environ reads.
ENV_READ = re.compile(
    r"""\b(?:env|env_bool|os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def settings_variables() -> set[str]:
    """Return the name of every environment variable portal/settings.py reads."""
    return set(ENV_READ.findall((ROOT / "portal" / "settings.py").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment_names(service: dict[str, Any]) -> set[str]:
    """Return the variable names a service sets, from either form of `environment:`."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment}


def test_the_scan_finds_the_settings_variables():
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY"} <= settings_variables()


def test_compose_defines_the_five_services(compose):
    assert set(compose["services"]) == {"postgres", "redis", "web", "worker", "beat"}


def test_every_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_health_checks_ask_each_server_itself(compose):
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["image"].startswith("redis:7")
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "/healthz" in str(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in str(services["worker"]["healthcheck"]["test"])


def test_app_services_start_once_what_they_need_is_healthy(compose):
    services = compose["services"]
    needs = {"web": {"postgres", "redis"}, "worker": {"postgres", "redis", "web"}, "beat": {"redis", "web"}}
    for name, required in needs.items():
        depends_on = services[name]["depends_on"]
        assert set(depends_on) == required, name
        for dependency in required:
            assert depends_on[dependency] == {"condition": "service_healthy"}, f"{name} -> {dependency}"


def test_app_services_run_the_web_server_worker_and_beat(compose):
    commands = {name: " ".join(compose["services"][name]["command"]) for name in APP_SERVICES}
    assert "gunicorn portal.wsgi" in commands["web"]
    assert "celery -A portal worker" in commands["worker"]
    assert "celery -A portal beat" in commands["beat"]
    for name in APP_SERVICES:
        assert compose["services"][name]["build"] == "."


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_setting_variable_is_passed_to_the_app_services(compose, service):
    missing = settings_variables() - environment_names(compose["services"][service])
    assert not missing, f"{service} does not pass {sorted(missing)} (add them to x-app in docker-compose.yml)"


def test_env_example_lists_every_setting_variable():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    missing = settings_variables() - listed
    assert not missing, f".env.example does not list {sorted(missing)}"
