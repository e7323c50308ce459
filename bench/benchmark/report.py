"""How the report is written: the table with its goals, the chart, and the table in docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

from .common import DOCS, MB


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(ours, baseline) -> str:
    if not ours or not baseline:
        return "-"
    return f"{ours / baseline:.2f}x"


def table(results: dict) -> tuple[list[list[str]], list[dict]]:
    f = results["figures"]
    rows, goals = [], []

    def goal(name: str, met: bool, text: str) -> str:
        goals.append({"goal": name, "met": met, "detail": text})
        return f"{text} {'**met**' if met else '**not met**'}"

    def row(label: str, figure: dict, note: str = "", digits: int = 1) -> None:
        """A figure measured for both: ours, baseline, their ratio, and the goal or a note."""
        ours, baseline = figure["ours"], figure["baseline"]
        rows.append([label, fmt(ours, digits), fmt(baseline, digits), ratio(ours, baseline), note])

    app, static = f["size_app_mb"], f["size_static_mb"]
    row(
        "applayer image (MB)",
        app,
        goal(
            "applayer <= floor + 10%",
            app["over_floor_pct"] <= 10,
            f"floor {fmt(app['floor'])}: +{fmt(app['over_floor_pct'])}% (≤ 10%)",
        ),
    )
    rows.append(
        [
            "staticlayer image (MB)",
            fmt(static["ours"]),
            "(in the app image)",
            "-",
            goal(
                "staticlayer <= floor + 1 MB",
                static["over_floor_mb"] <= 1,
                f"floor {fmt(static['floor'])}: +{fmt(static['over_floor_mb'], 2)} MB (≤ +1 MB)",
            ),
        ]
    )
    row("both images (MB)", f["size_total_mb"])
    row("applayer minus its base image (MB)", f["size_added_mb"], "what each Dockerfile adds to python:X(-slim)")
    cold, code, deps = f["build_cold_s"], f["rebuild_code_s"], f["rebuild_deps_s"]
    rounds = len(code.get("ours_runs", [None]))
    row(
        "cold build of both images (s)",
        cold,
        f"no build cache, empty uv cache: a machine's first build; fastest of {rounds}",
    )
    row(
        "rebuild of both after a one-line .py change (s)",
        code,
        goal(
            "code rebuild <= 10% of cold",
            code["ours"] <= 0.1 * cold["ours"],
            f"{fmt(code['ours'], 2)} s = {100 * code['ours'] / cold['ours']:.1f}% of cold"
            f" {fmt(cold['ours'])} s (≤ 10%); fastest of {rounds} each",
        ),
        digits=2,
    )
    installed = deps["ours_detail"]["venv_matches_lock"]
    row(
        f"rebuild after adding {deps['package']} (s)",
        deps,
        f"{100 * deps['ours'] / cold['ours']:.0f}% of cold"
        + (
            ""
            if installed["matches"]
            else goal(
                "dependency rebuild installs the new package",
                False,
                "; STALE: the image lacks "
                + ", ".join(installed["missing"])
                + " (the uv sync layer came from the cache)",
            )
        ),
    )
    row("`up -d` to first 200 from /healthz (s)", f["first_200_s"], "ours through nginx")
    srps, sp99 = f["static_rps"], f["static_p99_ms"]
    row(
        "static file, throughput (req/s)",
        srps,
        goal(
            "static >= 0.9x bare nginx",
            srps["ours"] >= 0.9 * srps["ceiling"],
            f"bare nginx {fmt(srps['ceiling'], 0)}: {srps['ours'] / srps['ceiling']:.2f}x (≥ 0.9x)",
        ),
        digits=0,
    )
    row("static file, p99 latency (ms)", sp99, f"bare nginx {fmt(sp99['ceiling'], 2)}", digits=2)
    row("home page, throughput (req/s)", f["home_rps"], "2 DB queries + template", digits=0)
    row("home page, p99 latency (ms)", f["home_p99_ms"])
    workers = f["gunicorn_workers"]["ours"]
    row("app RSS at idle (MB)", f["rss_idle_mb"], f"{workers} gunicorn workers + master vs runserver")
    row("app RSS under the home-page load (MB, peak)", f["rss_load_mb"])
    row("bake, median of runs (s)", f["bake_s"], "baseline: a one-file template", digits=2)
    return rows, goals


def backups_table(figures: dict) -> str:
    """Backup and restore of the live stack, as markdown (no baseline: it has no backups)."""
    rows = [
        ("database (MB, pg_database_size)", f"{figures['database_mb']:.0f} ({figures['rows']:,} generated rows)"),
        ("dump (MB, pg_dump -Fc)", f"{figures['dump_mb']:.1f}"),
        ("`make backup` (s)", f"{figures['backup_s']:.1f}"),
        ("`make restore NAME=latest CONFIRM=yes` (s)", f"{figures['restore_s']:.1f}"),
    ]
    return "\n".join(["| figure | value |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])


def update_part_doc(results: dict, part: str, what: str, part_table: str, after: str) -> None:
    """Writes (or rewrites) a part's marked block in docs/benchmarks.md: when and where it ran, what it measured,
    its table. A new block goes after the marker `after`."""
    doc = DOCS / "benchmarks.md"
    figures = results.get(part)
    if not doc.exists() or not figures:
        return
    m = figures.get("machine") or results.get("machine") or {}
    block = (
        f"<!-- bench:{part}:start (written by bench/run.py) -->\n"
        f"Run of {figures.get('date') or results.get('date')}: {m.get('cpus', '?')} cores, {m.get('engine', '?')} "
        f"{m.get('engine_version', '')}, stand-in base images; {what}\n\n{part_table}\n"
        f"<!-- bench:{part}:end -->"
    )
    text = doc.read_text()
    if f"<!-- bench:{part}:start" in text:
        text = re.sub(rf"<!-- bench:{part}:start.*?<!-- bench:{part}:end -->", lambda _: block, text, flags=re.S)
    else:
        text = text.replace(after, f"{after}\n\n{block}", 1)
    doc.write_text(text)


def update_backups_doc(results: dict) -> None:
    if figures := results.get("backups"):
        what = f"the default answers' live stack, off-site copies off. {figures['what']}."
        update_part_doc(results, "backups", what, backups_table(figures), "<!-- bench:table:end -->")


def edge_table(figures: dict) -> str:
    """The HTTPS edge beside nginx alone (both loaded from inside the stack's network), and a release."""

    def pair(name: str, key: str, digits: int) -> str:
        edge, alone = figures[f"{name}_edge"][key], figures[f"{name}_nginx"][key]
        return f"{fmt(edge, digits)} | {fmt(alone, digits)} | {ratio(edge, alone)}"

    release = figures["release"]
    rows = [
        ("static file, throughput (req/s)", pair("static", "requests_per_s", 0)),
        ("static file, p99 latency (ms)", pair("static", "p99_ms", 2)),
        ("home page, throughput (req/s)", pair("home", "requests_per_s", 0)),
        ("home page, p99 latency (ms)", pair("home", "p99_ms", 2)),
        ("`make release`: the command (s)", f"{release['command_s']:.1f} | - | -"),
        ("`make release`: first answer from the new tag (s)", f"{release['first_new_version_s']:.1f} | - | -"),
        (
            "`make release`: all traffic on the new tag (s)",
            f"{release['all_traffic_new_s']:.1f} | - | - ({release['probe_requests']} probes, "
            f"{release['probe_failed']} failed)",
        ),
    ]
    head = "| figure | through the edge (HTTPS) | nginx alone (HTTP) | edge ÷ nginx |"
    return "\n".join([head, "| --- | --- | --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])


def update_edge_doc(results: dict) -> None:
    if figures := results.get("edge"):
        what = (
            "the default answers' live stack with its Caddy edge, the certificate from pebble (Let's Encrypt's test "
            "CA). wrk runs in a container on the stack's network (HTTP/1.1; the edge over TLS, nginx alone over "
            "plain HTTP), rounds alternating. The release: `make release` to a second tag while a probe asks the "
            "edge for `X-App-Version` every 50 ms."
        )
        update_part_doc(results, "edge", what, edge_table(figures), "<!-- bench:backups:end -->")


def api_table(figures: dict) -> str:
    """The API option: a list call (a page of 20) beside the home page, per framework, through nginx."""
    frameworks = [name for name in ("drf", "ninja") if name in figures]
    rows = [
        ("home page, throughput (req/s)", [fmt(figures[f]["home"]["requests_per_s"], 0) for f in frameworks]),
        ("home page, p99 latency (ms)", [fmt(figures[f]["home"]["p99_ms"], 2) for f in frameworks]),
        (
            "`GET /api/documents/` (20 of 40), throughput (req/s)",
            [fmt(figures[f]["list"]["requests_per_s"], 0) for f in frameworks],
        ),
        (
            "`GET /api/documents/` (20 of 40), p99 latency (ms)",
            [fmt(figures[f]["list"]["p99_ms"], 2) for f in frameworks],
        ),
    ]
    names = {"drf": "Django REST framework", "ninja": "Django Ninja"}
    head = "| figure | " + " | ".join(names[f] for f in frameworks) + " |"
    lines = [head, "| --- |" + " --- |" * len(frameworks)]
    return "\n".join(lines + [f"| {name} | " + " | ".join(values) + " |" for name, values in rows])


def update_api_doc(results: dict) -> None:
    if figures := results.get("api"):
        what = (
            "each framework's live stack behind a proxy (api=drf / api=ninja, the other answers at their defaults), "
            f"wrk against nginx: {figures['what']}."
        )
        after = (
            "<!-- bench:edge:end -->"
            if "<!-- bench:edge:end -->" in (DOCS / "benchmarks.md").read_text()
            else "<!-- bench:table:end -->"
        )
        update_part_doc(results, "api", what, api_table(figures), after)


def markdown(rows: list[list[str]]) -> str:
    head = ["figure", "ours", "baseline", "ours ÷ baseline", "goal / note"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plain(rows: list[list[str]]) -> str:
    head = ["figure", "ours", "baseline", "ratio", "goal / note"]
    cells = [head] + [[c.replace("**", "").replace("`", "") for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = results["figures"]
    s = results["sizes"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ours_c, base_c, floor_c, ceil_c = "#2b7bba", "#d9822b", "#9aa5b1", "#4caf50"

    ax = axes[0][0]
    labels = ["applayer", "app floor", "staticlayer", "static floor", "baseline"]
    values = [s["images"]["app"], s["app_floor"], s["images"]["static"], s["static_floor"], s["images"]["naive"]]
    ax.bar(labels, [v / MB for v in values], color=[ours_c, floor_c, ours_c, floor_c, base_c])
    ax.set_title("Image size (MB)")
    ax.tick_params(axis="x", labelrotation=20)

    def pair(ax, keys, names, title, digits=0, ceiling=None):
        xs = range(len(keys))
        ours = [f[k]["ours"] for k in keys]
        base = [f[k]["baseline"] for k in keys]
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="ours", color=ours_c)
        ax.bar([x + 0.2 for x in xs], base, 0.4, label="baseline", color=base_c)
        if ceiling:
            ax.bar([ceiling[0] + 0.6], [ceiling[1]], 0.4, label="bare nginx", color=ceil_c)
        for x, v in zip(xs, ours, strict=True):
            ax.annotate(f"{v:.{digits}f}", (x - 0.2, v), ha="center", va="bottom", fontsize=8)
        for x, v in zip(xs, base, strict=True):
            ax.annotate(f"{v:.{digits}f}", (x + 0.2, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), names)
        ax.set_title(title)
        ax.legend(fontsize=8)

    pair(
        axes[0][1],
        ["build_cold_s", "rebuild_code_s", "rebuild_deps_s"],
        ["cold", "code\nchange", "dependency\nchange"],
        "Build time (s)",
    )
    pair(axes[0][2], ["first_200_s"], ["up -d to first 200"], "Start-up (s)", digits=1)
    pair(
        axes[1][0],
        ["static_rps", "home_rps"],
        ["static file", "home page"],
        "Throughput (req/s)",
        ceiling=(0, f["static_rps"]["ceiling"]),
    )
    pair(
        axes[1][1],
        ["static_p99_ms", "home_p99_ms"],
        ["static file", "home page"],
        "p99 latency (ms)",
        digits=1,
        ceiling=(0, f["static_p99_ms"]["ceiling"]),
    )
    pair(axes[1][2], ["rss_idle_mb", "rss_load_mb"], ["idle", "under load"], "App container RSS (MB)")
    m = results["machine"]
    fig.suptitle(
        f"Template vs naive baseline: {m['cpus']} cores, {m['memory_gib']:.0f} GiB, {m['engine']} "
        f"{m['engine_version']}, {m['builder']}, stand-in base images ({results['date']})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_docs(results: dict, table_md: str) -> None:
    doc = DOCS / "benchmarks.md"
    if not doc.exists():
        return
    m, load = results["machine"], results["load"]
    block = (
        f"<!-- bench:table:start (written by bench/run.py) -->\n"
        f"Run of {results['date']}: {m['cpus']} cores ({m['cpu_model'] or 'unknown CPU'}), {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}, {m['engine']} {m['engine_version']} ({m['builder']}), stand-in base images; "
        f"wrk {load['threads']} threads, {load['connections']} connections, {load['duration_s']} s per figure "
        f"after a {load['warmup_s']} s warm-up. Whole run: {results['run_seconds'] / 60:.1f} min; load average "
        f"{results['load_average']['start']:.1f} at its start, {results['load_average']['end']:.1f} at its end (the "
        f"engine is shared with other runs).\n\n"
        f"{table_md}\n"
        f"<!-- bench:table:end -->"
    )
    text = doc.read_text()
    new = re.sub(r"<!-- bench:table:start.*?<!-- bench:table:end -->", lambda _: block, text, flags=re.S)
    doc.write_text(new)


def frontend_table(figures: dict) -> str:
    """Issue 25: both images' builds with frontend=tailwind beside none."""
    none, tailwind = figures["none"], figures["tailwind"]
    rows = [
        ("cold build, both images (s)", "cold"),
        ("rebuild after a one-line code change (s)", "code"),
        ("rebuild after a one-line template change (s)", "template"),
    ]
    lines = [
        "| figure | frontend=none | frontend=tailwind | tailwind ÷ none |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {none[key]['seconds']:.1f} | {tailwind[key]['seconds']:.1f} | "
            f"{ratio(tailwind[key]['seconds'], none[key]['seconds'])} |"
            for name, key in rows
        ),
    ]
    for image in ("applayer", "staticlayer"):
        a, b = none["image_bytes"][image], tailwind["image_bytes"][image]
        lines.append(f"| `{image}` image (MB) | {a / 1e6:.1f} | {b / 1e6:.1f} | {ratio(b, a)} |")
    return "\n".join(lines)


def update_frontend_doc(results: dict) -> None:
    if figures := results.get("frontend"):
        what = (
            "both live images (applayer, then staticlayer, as `make build-live` builds them) of the default answers, "
            "frontend=tailwind beside none: cold (no build cache, empty uv and npm caches), then after a one-line "
            "change to views.py and to home.html; the fastest of the rounds."
        )
        update_part_doc(results, "frontend", what, frontend_table(figures), "<!-- bench:edge:end -->")
