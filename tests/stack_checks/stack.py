"""The base of the checks: a project's answers and what follows from them."""

from __future__ import annotations


class Stack:
    """A project to bake (its answers, `options`, set by each test class in tests/test_e2e.py) and what follows
    from them. The conftest fixtures `project` and `live` bake, build and start it once per class."""

    options: dict[str, str] = {}

    @property
    def with_celery(self) -> bool:
        return self.options["use_celery"] == "y"

    @property
    def store(self) -> str | None:
        """The key-value store's service: valkey, redis, or None."""
        return None if self.options["key_value_store"] == "none" else self.options["key_value_store"]
