"""Size figures: the images, what is inside them, and the floors they are compared with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import IMAGES, MANIFEST, MB, log
from .engine import image_size, in_image, key_values, sh_in_image
from .project import context_bytes

if TYPE_CHECKING:
    from .state import Run


def sizes(ctx: Run) -> None:
    sizes = {name: image_size(IMAGES[name]) for name in ("app", "static", "naive")}
    bases = {name: image_size(ctx.bases[name]) for name in ("app", "static", "naive")}
    app = key_values(
        sh_in_image(
            IMAGES["app"],
            r"""
        echo venv=$(du -sb /opt/venv | cut -f1)
        echo app=$(du -sb /app | cut -f1)
        echo pyc_venv=$(find /opt/venv -name '*.pyc' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
        echo pycache_app=$(find /app -name __pycache__ | wc -l)
        echo compilers=$(for t in gcc cc c++ g++ make; do command -v $t; done | tr '\n' ' ')
        echo uv=$(command -v uv || true)
        for d in /root/.cache /tmp /var/cache /var/lib/apt/lists; do
            echo "cache:$d=$(du -sb $d 2>/dev/null | cut -f1)"
        done
        echo largest=$(du -s --block-size=1 /opt/venv/lib/python*/site-packages/* | sort -n | tail -5 \
            | awk '{n=split($2,p,"/"); printf "%s:%d,", p[n], $1}')
    """,
        )
    )
    base_caches = key_values(
        sh_in_image(
            ctx.bases["app"],
            r"""
        for d in /root/.cache /tmp /var/cache /var/lib/apt/lists; do
            echo "cache:$d=$(du -sb $d 2>/dev/null | cut -f1)"
        done
    """,
        )
    )
    static = key_values(
        sh_in_image(
            IMAGES["static"],
            r"""
        echo static=$(du -sb /srv/static | cut -f1)
        echo files=$(find /srv/static -type f | wc -l)
        echo hashed=$(find /srv/static -type f -regextype posix-extended \
            -regex '.*\.[0-9a-f]{12}\.[A-Za-z0-9]+$' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    """,
        )
    )
    naive = key_values(
        sh_in_image(
            IMAGES["naive"],
            r"""
        site=$(python -c 'import django, os; print(os.path.dirname(os.path.dirname(django.__file__)))')
        echo site=$site
        echo deps=$(du -sb "$site" | cut -f1)
        echo pip_cache=$(du -sb /root/.cache/pip 2>/dev/null | cut -f1)
        echo app=$(du -sb /app | cut -f1)
        echo compilers=$(for t in gcc cc c++ g++ make; do command -v $t; done | tr '\n' ' ')
    """,
        )
    )
    code = context_bytes(ctx.project) + len(in_image(IMAGES["app"], "cat", MANIFEST).encode())
    app_floor = bases["app"] + int(app["venv"]) + code
    static_floor = bases["static"] + int(static["static"])
    ctx.results["sizes"] = {
        "images": sizes,
        "bases": bases,
        "app_inside": app,
        "app_base_caches": base_caches,
        "static_inside": static,
        "naive_inside": naive,
        "code_bytes": code,
        "app_floor": app_floor,
        "static_floor": static_floor,
    }
    figures = ctx.results["figures"]
    figures["size_app_mb"] = {
        "ours": sizes["app"] / MB,
        "baseline": sizes["naive"] / MB,
        "floor": app_floor / MB,
        "over_floor_pct": 100 * (sizes["app"] / app_floor - 1),
    }
    figures["size_static_mb"] = {
        "ours": sizes["static"] / MB,
        "floor": static_floor / MB,
        "over_floor_mb": (sizes["static"] - static_floor) / MB,
        "unhashed_duplicates_mb": (int(static["static"]) - int(static["hashed"])) / MB,
    }
    figures["size_total_mb"] = {"ours": (sizes["app"] + sizes["static"]) / MB, "baseline": sizes["naive"] / MB}
    figures["size_added_mb"] = {
        "ours": (sizes["app"] - bases["app"]) / MB,
        "baseline": (sizes["naive"] - bases["naive"]) / MB,
    }
    log(
        f"sizes: applayer {sizes['app'] / MB:.1f} MB (floor {app_floor / MB:.1f}), staticlayer "
        f"{sizes['static'] / MB:.1f} MB (floor {static_floor / MB:.1f}), baseline {sizes['naive'] / MB:.1f} MB"
    )
