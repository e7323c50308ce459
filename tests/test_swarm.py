"""Issue 26: the live stack on a real multi-node Docker Swarm (compose.swarm.yaml, ./live swarm-*), under a load of
our own through the edge. The swarm is three docker:28-dind containers (a manager, two workers) and a registry:2 on a
network of their own (support.Swarm): the test engine itself never enters swarm mode. The baked images are built
once on the test engine and pushed to the registry, with the stock images the stack names; ./live deploys them as an
operator would, with DOCKER_HOST pointing at the manager. Node 1 is the manager, the data node and the edge node.

The refusals of ./live's swarm tasks need no engine (a stub docker that fails loudly if anything calls it)."""

from __future__ import annotations

import os
import re
import time

import pytest
import requests

from support import (
    EdgeClient,
    Load,
    S3Server,
    Swarm,
    bake,
    clean_env,
    env_file,
    poll,
    postgres_major,
    require_engine,
    run,
    stack_name,
)

STORE_IMAGE = "valkey/valkey:9-alpine"
CADDY_IMAGE = "caddy:2.11"
# The app at a new tag: the same code under another digest (a label), as a release of a one-line change would be.
NEXT = "FROM {app}:e2e\nLABEL release=2\n"
# An app whose health check never passes: its server never starts.
BROKEN = 'FROM {app}:e2e\nCMD ["python", "-c", "import time; time.sleep(3600)"]\n'
# The values ./live swarm-deploy makes Docker secrets of (compose.swarm.yaml's secrets, media_storage=s3).
SECRETS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "MEDIA_S3_SECRET_ACCESS_KEY",
    "POSTGRES_PASSWORD",
    "APP_DB_PASSWORD",
    "BACKUP_AUTH_KEY",
    "REDIS_PASSWORD",
)
DOCKER_STUB = '#!/bin/sh\necho "docker stub: called with $*" >&2\nexit 99\n'


def test_the_swarm_tasks_refuse_bad_arguments_before_anything_runs(cookies, tmp_path):
    path = bake(cookies, project_name="Swarm Entry")
    (tmp_path / "docker").write_text(DOCKER_STUB)
    (tmp_path / "docker").chmod(0o755)
    env = clean_env(PATH=f"{tmp_path}:{os.environ['PATH']}")
    images = {"APP_IMAGE": "r.example/a", "STATIC_IMAGE": "r.example/s", "BACKUP_IMAGE": "r.example/b"}
    refusals = [
        (("swarm-deploy",), {}, "swarm-deploy: which tag? Usage: ./live swarm-deploy TAG=<tag>"),
        (("swarm-deploy", "1.0"), {}, "swarm-deploy takes KEY=value arguments (TAG=), not '1.0'."),
        (("swarm-deploy", "TAG=1;reboot"), images, "TAG=1;reboot is no image tag"),
        (("swarm-deploy", "TAG=1.0"), {}, "APP_IMAGE= names no image in a registry: set APP_IMAGE=registry"),
        (("swarm-deploy", "TAG=1.0"), {**images, "STATIC_IMAGE": "local"}, "STATIC_IMAGE=local names no image"),
        (("swarm-release", "NAME=x"), images, "swarm-release takes no NAME= (only TAG=)."),
        (("swarm-release", "TAG="), images, "which tag? Usage: ./live swarm-release TAG=<tag>"),
        (("swarm-release", "TAG=-x"), images, "TAG=-x is no image tag"),
        (("swarm-rollback", "TAG=1"), images, "swarm-rollback takes no arguments, not 'TAG=1'."),
        (("swarm-status", "now"), {}, "swarm-status takes no arguments, not 'now'."),
    ]
    for args, extra, message in refusals:
        refused = run(["./live", *args], cwd=path, env={**env, **extra}, check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode == 2 and message in output, (args, output)
        assert "othing was changed" in output and "docker stub" not in output, (args, output)
    listed = run(["./live", "help"], cwd=path, env=env).stdout
    assert re.findall(r"^  (swarm-[a-z]+) ", listed, re.M) == [
        "swarm-deploy",
        "swarm-release",
        "swarm-rollback",
        "swarm-status",
    ]


def timed(what: str, started: float) -> None:
    print(f"[swarm] {what}: {time.monotonic() - started:.0f}s")


@pytest.fixture(scope="class")
def cluster(cookies_session):
    require_engine()
    started = time.monotonic()
    # Uploads in a bucket every node reaches (media_storage=s3): moto's S3 server beside the nodes.
    path = bake(cookies_session, project_name=stack_name("E2E Swarm"), domain_name="localhost", media_storage="s3")
    slug = path.name
    app, static, backup = f"{slug}-app", f"{slug}-static", f"{slug}-backup"
    major = postgres_major(path)
    local = [f"{app}:e2e", f"{app}:e2e-2", f"{app}:broken", f"{static}:e2e", f"{backup}:pg{major}"]
    swarm = Swarm(slug)
    try:
        run(["docker", "build", "--target", "applayer", "-t", f"{app}:e2e", "."], cwd=path, timeout=1200)
        run(["docker", "build", "--target", "staticlayer", "-t", f"{static}:e2e", "."], cwd=path, timeout=1200)
        run(
            ["docker", "build", "--target", "backup", "--build-arg", f"POSTGRES_VERSION={major}"]
            + ["-t", f"{backup}:pg{major}", "."],
            cwd=path,
            timeout=1200,
        )
        for tag, dockerfile in (("e2e-2", NEXT), ("broken", BROKEN)):
            (path / f"swarm-{tag}.Dockerfile").write_text(dockerfile.format(app=app))
            run(["docker", "build", "-f", f"swarm-{tag}.Dockerfile", "-t", f"{app}:{tag}", "."], cwd=path)
        timed("images built", started)
        swarm.create()
        timed("registry and three nodes in a swarm", started)
        s3 = start_s3(swarm, path)
        pushes = [(f"{app}:{tag}", f"{app}:{tag}") for tag in ("e2e", "e2e-2", "broken")]
        pushes += [(f"{static}:e2e", f"{static}:{tag}") for tag in ("e2e", "e2e-2", "broken")]
        pushes += [(f"{backup}:pg{major}", f"{backup}:pg{major}")]
        # The stock images under their Docker Hub names, in the registry the nodes use as their mirror.
        pushes += [(f"postgres:{major}", f"library/postgres:{major}"), (CADDY_IMAGE, f"library/{CADDY_IMAGE}")]
        pushes += [(STORE_IMAGE, STORE_IMAGE)]
        for image, name in pushes:
            swarm.push(image, name)
        timed("images pushed", started)
        swarm.docker("node", "update", "--label-add", f"{slug}.data=true", "--label-add", f"{slug}.edge=true", "node1")
        env = clean_env(
            DOCKER_HOST=swarm.host(1),
            APP_IMAGE=f"registry:5000/{app}",
            STATIC_IMAGE=f"registry:5000/{static}",
            BACKUP_IMAGE=f"registry:5000/{backup}",
            APP_REPLICAS="3",
            NGINX_REPLICAS="2",
            WORKER_REPLICAS="1",
            RELEASE_TIMEOUT="400",
        )
        deployed = run(["./live", "swarm-deploy", "TAG=e2e"], cwd=path, env=env, timeout=900, check=False)
        print(deployed.stdout, deployed.stderr)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        client = EdgeClient(swarm.address(1))
        poll(lambda: answers(client), 180, what="the home page through the edge")
        timed("deployed, the home page answers through the edge", started)
        yield Cluster(swarm, path, slug, env, client, s3)
    finally:
        for service in ("app", "edge"):
            logs = swarm.docker("service", "logs", "--tail", "30", f"{slug}_{service}", check=False, timeout=60)
            print(f"--- {service}\n{logs.stdout[-3000:]}{logs.stderr[-1500:]}")
        swarm.remove()
        run(["docker", "rmi", *local], check=False)
        timed("whole class, cleaned up", started)


def start_s3(swarm: Swarm, path) -> str:
    """moto's S3 server on the swarm's network (the app's tasks reach it through their overlay's way out), its
    bucket created, and .envs/prod.env pointed at it as a user would fill it in; its endpoint."""
    address = swarm.subnet.rsplit(".", 1)[0] + ".3"
    server = S3Server(f"{swarm.name}-s3", swarm.name, "--ip", address)
    server.start(path.parent / "s3-server")
    server.python("s3.create_bucket(Bucket='e2e-swarm-media')")
    settings = {
        "MEDIA_S3_BUCKET": "e2e-swarm-media",
        "MEDIA_S3_REGION": "us-east-1",
        "MEDIA_S3_ACCESS_KEY_ID": "AKIAE2ESWARMKEY",
        "MEDIA_S3_SECRET_ACCESS_KEY": "e2e-swarm-media-secret",
    }
    prod = path / ".envs/prod.env"
    text = prod.read_text()
    for key, value in settings.items():
        text, found = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", text)
        assert found == 1, f"{key}= is not in prod.env"
    prod.write_text(text + f"MEDIA_S3_ENDPOINT_URL=http://{address}:5000\n")
    return f"http://{address}:5000"


class Cluster:
    def __init__(self, swarm: Swarm, path, slug: str, env: dict[str, str], client: EdgeClient, s3: str):
        self.swarm, self.path, self.slug, self.env, self.client, self.s3 = swarm, path, slug, env, client, s3

    def manage(self, node: str, code: str) -> str:
        """Python in the settings of an app task on `node` (docker exec: the settings read the secrets' files)."""
        number = int(node.removeprefix("node"))
        container = self.swarm.docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.slug}_app", node=number
        ).stdout.split()[0]
        return self.swarm.docker(
            "exec", container, "python", "manage.py", "shell", "--verbosity", "0", "-c", code, node=number
        ).stdout.strip()

    def live(self, *args: str, check: bool = True):
        result = run(["./live", *args], cwd=self.path, env=self.env, timeout=900, check=False)
        result.output = result.stdout + result.stderr
        print(result.output[-3000:])
        if check:
            assert result.returncode == 0, result.output[-4000:]
        return result

    def tasks(self, service: str) -> list[tuple[str, str]]:
        """(node, image) of each running task of the service."""
        listed = self.swarm.docker(
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.Image}} {{.CurrentState}}",
            f"{self.slug}_{service}",
        ).stdout
        return [tuple(line.split()[:2]) for line in listed.splitlines() if " Running " in f" {line} "]

    def converged(self, service: str, replicas: int, avoid: tuple[str, ...] = ()) -> bool:
        tasks = [task for task in self.tasks(service) if task[0] not in avoid]
        return len(tasks) == replicas and len(self.tasks(service)) == replicas


def answers(client: EdgeClient) -> bool:
    try:
        return client.request("GET", "/")[0] == 200
    except OSError:
        return False


def report(scenario: str, load: Load, started: float) -> None:
    print(
        f"[swarm] {scenario}: {len(load.failures)} failed of {load.sent} requests in "
        f"{time.monotonic() - started:.0f}s {load.failures[:10]}"
    )


class TestSwarm:
    def test_1_requests_spread_over_app_replicas_on_different_nodes(self, cluster):
        services = cluster.swarm.docker("stack", "services", "--format", "{{.Name}} {{.Replicas}}", cluster.slug)
        replicas = dict(line.split(" ", 1) for line in services.stdout.splitlines())
        assert replicas[f"{cluster.slug}_beat"] == "1/1", replicas  # exactly one scheduler in the swarm
        assert replicas[f"{cluster.slug}_app"] == "3/3", replicas
        started = time.monotonic()
        with Load(cluster.client, "/") as load:
            time.sleep(8)
        report("steady load", load, started)
        logs = cluster.swarm.docker("service", "logs", f"{cluster.slug}_app", timeout=60)
        nodes = set(re.findall(r"@(node\d)\s*\|.*GET /\?load=", logs.stdout + logs.stderr))
        print(f"[swarm] app tasks that served the load ran on {sorted(nodes)}")
        assert len(nodes) >= 2, nodes
        assert load.sent >= 10 and not load.failures

    def test_1b_no_secret_is_in_a_service_definition(self, cluster):
        """The env files' secret values reach the services as Docker secrets only: none is in what `docker service
        inspect` shows every manager (compose.swarm.yaml empties them; the app reads NAME_FILE instead)."""
        secrets = [
            value
            for name in ("prod", "db", "backup", "store")
            for key, value in env_file(cluster.path / f".envs/{name}.env").items()
            if key in SECRETS
        ]

        services = cluster.swarm.docker("service", "ls", "-q").stdout.split()
        specs = cluster.swarm.docker("service", "inspect", *services).stdout
        assert "SECRET_KEY_FILE=/run/secrets/secret_key" in specs
        leaked = [value[:6] + "..." for value in secrets if value in specs]
        assert not leaked, f"secret values in the service definitions: {leaked}"

    def test_2_an_upload_stored_on_one_node_is_read_on_another(self, cluster):
        """The media storage (media_storage=s3) as the app uses it: saved by the app on one node, read by the app
        on another, and served to a visitor by the bucket's signed URL."""
        nodes = sorted({node for node, _ in cluster.tasks("app")})
        assert len(nodes) >= 2, nodes
        storage = "from django.core.files.storage import default_storage as s; "
        saved = cluster.manage(
            nodes[0],
            storage + "from django.core.files.base import ContentFile; "
            f"print(s.save('documents/swarm.txt', ContentFile(b'saved on {nodes[0]}')))",
        )
        read = cluster.manage(nodes[1], storage + f"print(s.open('{saved}').read().decode()); print(s.url('{saved}'))")
        content, url = read.splitlines()[-2:]
        print(f"[swarm] {saved}: saved on {nodes[0]}, read on {nodes[1]}: {content!r}")
        assert content == f"saved on {nodes[0]}"
        assert url.startswith(f"{cluster.s3}/e2e-swarm-media/{saved}?") and "Signature=" in url, url
        served = requests.get(url, timeout=30)
        assert served.status_code == 200 and served.text == content

    def test_3_a_rolling_release_fails_no_request(self, cluster):
        started = time.monotonic()
        with Load(cluster.client) as load:
            cluster.live("swarm-release", "TAG=e2e-2")
        report("rolling release", load, started)
        assert {image.split("@")[0].rsplit(":", 1)[1] for _, image in cluster.tasks("app")} == {"e2e-2"}
        assert not load.failures

    def test_4_a_release_that_fails_its_health_check_rolls_back_by_itself(self, cluster):
        started = time.monotonic()
        with Load(cluster.client) as load:
            released = cluster.live("swarm-release", "TAG=broken", check=False)
        report("failed release, rolled back", load, started)
        assert released.returncode == 1 and "rolled back by Swarm" in released.output, released.output
        assert {image.split("@")[0].rsplit(":", 1)[1] for _, image in cluster.tasks("app")} == {"e2e-2"}
        assert "e2e-2" in cluster.live("swarm-status").output
        assert not load.failures

    def test_5_a_drained_then_a_killed_worker(self, cluster):
        swarm = cluster.swarm
        started = time.monotonic()
        with Load(cluster.client) as load:
            swarm.docker("node", "update", "--availability", "drain", "node2")
            poll(lambda: cluster.converged("app", 3, avoid=("node2",)), 180, what="app's tasks off node2")
            poll(lambda: cluster.converged("nginx", 2, avoid=("node2",)), 180, what="nginx's tasks off node2")
        report("drain node2", load, started)
        drained = list(load.failures)
        swarm.docker("node", "update", "--availability", "active", "node2")
        started = time.monotonic()
        with Load(cluster.client) as load:
            run(["docker", "kill", swarm.node(3)])
            poll(lambda: "Down" in swarm.docker("node", "ls").stdout, 120, what="node3 to be marked down")
            poll(lambda: cluster.converged("app", 3, avoid=("node3",)), 180, what="app's tasks off node3")
            poll(lambda: cluster.converged("nginx", 2, avoid=("node3",)), 180, what="nginx's tasks off node3")
        report("kill node3", load, started)
        assert not drained
        # A request in flight on node3 when it dies is lost: a peer that vanishes sends no reset, so the hop
        # waiting for its answer (the edge or nginx) only times out. One client thread: at most one such request.
        assert len(load.failures) <= 1, load.failures

    def test_6_the_database_keeps_its_data_across_a_node_restart_and_a_stack_update(self, cluster):
        swarm = cluster.swarm

        def psql(sql: str, check: bool = True):
            """The database's answer to sql, in its container on node1; None while node1's engine is away."""
            found = swarm.docker(
                "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={cluster.slug}_db", check=False
            )
            container = found.stdout.split() if found.returncode == 0 else []
            if not container:
                return None
            return swarm.docker(
                "exec", container[0], "psql", "-U", "postgres", "-d", cluster.slug, "-tAc", sql, check=check
            ).stdout.strip()

        psql("CREATE TABLE swarm_probe (kept text); INSERT INTO swarm_probe VALUES ('across a restart')")
        started = time.monotonic()
        run(["docker", "restart", swarm.node(1)], timeout=300)
        poll(lambda: psql("SELECT kept FROM swarm_probe", check=False), 300, what="the database after the restart")
        poll(lambda: answers(cluster.client), 300, what="the site after node1's restart")
        timed("node1 restarted, the site answers again", started)
        assert psql("SELECT kept FROM swarm_probe") == "across a restart"
        started = time.monotonic()
        cluster.live("swarm-release", "TAG=e2e")
        timed("stack update (a release back to e2e)", started)
        assert psql("SELECT kept FROM swarm_probe") == "across a restart"
