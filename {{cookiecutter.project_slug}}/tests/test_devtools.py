"""The development tools' settings (README "Development tools"); tests/stack_checks in the template show the toolbar
in the development stack and its absence from the live image."""

from pathlib import Path

from django.conf import settings

from config.settings import container_gateways

# /proc/net/route in a container on a Compose network: the default route through 172.18.0.1, and the network's own.
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_the_debug_toolbar_is_off_in_the_tests() -> None:
    assert "debug_toolbar" not in settings.INSTALLED_APPS
    assert not any("debug_toolbar" in name for name in settings.MIDDLEWARE)


def test_in_a_container_the_host_is_the_default_gateway_and_outside_one_nobody(tmp_path: Path) -> None:
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/route").write_text(ROUTES)
    assert container_gateways(tmp_path) == []  # not in a container: the gateway would be the LAN's router
    (tmp_path / ".dockerenv").touch()
    assert container_gateways(tmp_path) == ["172.18.0.1"]
    (tmp_path / "proc/net/route").unlink()
    assert container_gateways(tmp_path) == []
