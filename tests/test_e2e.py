"""The baked stack, built and run under Docker Compose exactly as a user would, for three sets of answers.

Each class bakes one project and builds its images once (the conftest fixtures `project` and `live`), and runs
the checks of tests/stack_checks/ against it, in order, on one xdist worker (conftest's STACKS). Everything a
class creates is removed when it ends (`down -v`, and its images). Needs a Docker engine (skipped without one,
except under CI where that is a failure). Numbers in the check names follow issue #3's list."""

from __future__ import annotations

import pytest

from stack_checks.beat_and_sentry import BeatAndSentryChecks
from stack_checks.faults import FaultChecks
from stack_checks.images import ImageChecks
from stack_checks.serving import ServingChecks
from stack_checks.stack import Stack
from support import E2E_VARIANTS, answers

pytestmark = pytest.mark.e2e


class TestStackOnTheDefaults(BeatAndSentryChecks):
    """The default answers' versions: Python 3.14, PostgreSQL 18 (its new data layout), Valkey and Celery (with
    beat); and error reports to Sentry, which are off by default. Every check."""

    options = {"project_name": "E2E Full", **answers(**E2E_VARIANTS["e2e-full"])}


class TestStackOnTheOldestVersions(FaultChecks):
    """The oldest supported pair, Python 3.12 and PostgreSQL 15, on the newest Django, with no store; users
    sign in with a username (the defaults: by email). Every check but beat and Sentry."""

    options = {"project_name": "E2E Lean", **answers(**E2E_VARIANTS["e2e-lean"])}


class TestStackWithRedis(Stack):
    """Redis 8 as the store and broker, on PostgreSQL 17 (the old data layout): the checks that the store and
    the database version change, not the whole list again."""

    options = {"project_name": "E2E Redis", **answers(**E2E_VARIANTS["e2e-redis"])}
    test_1_every_dockerfile_target_builds = ImageChecks.test_1_every_dockerfile_target_builds
    test_3a_live_pages_and_readiness_through_nginx = ServingChecks.test_3a_live_pages_and_readiness_through_nginx
    test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx = (
        ServingChecks.test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx
    )
    test_4_celery_task_runs_in_the_worker = ServingChecks.test_4_celery_task_runs_in_the_worker
    test_8b_live_containers_are_locked_down = ServingChecks.test_8b_live_containers_are_locked_down
    test_5_data_survives_down_and_up_and_down_v_removes_it = (
        FaultChecks.test_5_data_survives_down_and_up_and_down_v_removes_it
    )
