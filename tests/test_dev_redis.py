"""The development stack (compose.yaml) with key_value_store=redis: its redis service, started as `make up` starts
it, is the app's cache and Celery's broker (test_e2e.py starts the development stack only with Valkey). Its own
bake ("E2E Dev Redis ..."), the options of test_e2e's Redis stack so a full run reuses its build cache. Needs a
Docker engine (skipped without one, except under CI)."""

from __future__ import annotations

import pytest
import requests

from support import DOMAIN, E2E_VARIANTS, TIMEOUT, Project, answers, bake, require_engine, stack_name

pytestmark = pytest.mark.e2e
DEV = "compose.yaml"


@pytest.fixture(scope="module")
def dev(cookies_session):
    require_engine()
    # test_e2e's Redis answers (a seed row of the covering set), here for the development stack.
    options = answers(**E2E_VARIANTS["e2e-redis"])
    path = bake(cookies_session, project_name=stack_name("E2E Dev Redis"), domain_name=DOMAIN, **options)
    project = Project(path)
    project.remove()
    try:
        project.compose(DEV, "up", "-d", "--build", "--wait", "--wait-timeout", str(TIMEOUT), timeout=TIMEOUT + 900)
        yield project
    finally:
        print(project.logs(DEV)[-6000:])
        project.remove()


def shell(project: Project, code: str) -> str:
    """The last line a Django shell in the development app prints."""
    return project.compose(DEV, "exec", "-T", "app", "python", "manage.py", "shell", "-c", code).stdout.split("\n")[-2]


class TestDevelopmentRedis:
    def test_1_redis_runs_healthy_and_the_app_serves(self, dev):
        services = dev.compose(DEV, "config", "--services").stdout.split()
        assert "redis" in services and "valkey" not in services and "worker" in services, services
        redis = dev.inspect(dev.container(DEV, "redis"))
        assert redis["Config"]["Image"].startswith("redis:"), redis["Config"]["Image"]
        for service in ("redis", "app", "db"):
            assert dev.health(DEV, service) == "healthy", service
        assert dev.health(DEV, "worker") in ("healthy", "running")
        home = requests.get(f"http://127.0.0.1:{dev.ports['APP_PORT']}/", timeout=30)
        assert home.status_code == 200 and "It works" in home.text

    def test_2_the_cache_and_the_broker_are_this_redis(self, dev):
        assert shell(dev, "from django.core.cache import cache; cache.set('e2e-dev-redis', 'ok', 300); print('set')")
        # The key is in the redis service's keyspace (no password in development: it publishes no port).
        keys = dev.compose(DEV, "exec", "-T", "redis", "redis-cli", "--scan")
        assert any(key.endswith("e2e-dev-redis") for key in keys.stdout.split()), keys.stdout
        # A task through the broker: the development worker runs it and answers through the result backend.
        task = f"from {dev.slug}.tasks import count_documents as c; print(c.delay().get(timeout=60)['worker'])"
        worker = dev.container(DEV, "worker")
        assert shell(dev, task) == f"celery@{worker[:12]}"
