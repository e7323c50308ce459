"""The checks of a baked stack, by topic, for the test classes in tests/test_e2e.py (one class per set of answers).

Each topic's class extends the one before, so a test class that extends the last runs them all, in this order
(pytest runs a base class's tests before its subclass's): the development stack (before the live one starts: they
would share Docker's network address pools), the images, the live stack serving, faults survived, then Celery beat
and Sentry. A class may also pick single checks (TestStackWithRedis).
"""
