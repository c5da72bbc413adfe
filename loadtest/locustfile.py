"""Locust's entry: `locust -f loadtest/locustfile.py --host 127.0.0.1:50051` (or, bounded
and with reports, `alora-serve loadtest`). The user lives in the package."""

from alora_serve.loadtest.locust_user import RagUser  # noqa: F401
