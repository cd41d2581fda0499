"""A broker or cache on Redis that hangs cannot hold a request for long: the settings
give every Redis socket a timeout and bound the publish retries (the fault itself is
tests/activities/test_faults_broker.py)."""

from __future__ import annotations

from .test_settings import KEY, read

NAMES = [
    "CELERY_BROKER_TRANSPORT_OPTIONS",
    "CELERY_TASK_PUBLISH_RETRY_POLICY",
    "CACHES",
]


def test_redis_broker_and_cache_sockets_time_out_and_publish_retries_are_bounded(tmp_path):
    values = read(NAMES, tmp_path, SECRET_KEY=KEY, CELERY_BROKER_URL="redis://127.0.0.1:6379/3")
    options = values["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 3.0
    assert options["visibility_timeout"] == 3600
    policy = values["CELERY_TASK_PUBLISH_RETRY_POLICY"]
    assert policy["max_retries"] == 2 and policy["interval_max"] <= 0.5
    cache = values["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/3"  # the broker's Redis
    assert cache["OPTIONS"] == {"socket_connect_timeout": 3.0, "socket_timeout": 3.0}


def test_the_timeout_is_a_setting_and_the_operators_own_options_win(tmp_path):
    values = read(
        NAMES,
        tmp_path,
        SECRET_KEY=KEY,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
        CRM_REDIS_SOCKET_TIMEOUT="1.5",
        CELERY_BROKER_TRANSPORT_OPTIONS='{"socket_timeout": 7}',
        CACHE_URL="redis://127.0.0.1:6379/4?socket_timeout=9",
    )
    options = values["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.5, 7)
    cache = values["CACHES"]["default"]
    assert cache["OPTIONS"] == {"socket_connect_timeout": 1.5, "socket_timeout": 9}
