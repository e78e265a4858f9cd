import dramatiq
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils.module_loading import import_string
from django_dramatiq.apps import DjangoDramatiqConfig
from django_dramatiq.utils import load_middleware

from jobs.control_state import control_client
from tests.faults.fleet import Fleet
from tests.faults.harness import PrivateRedis
from tests.faults.profile import current_profile
from tests.faults.report import RESULTS, results_path, table, write_json


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "faults: a fault-injection scenario with real workers, schedulers and Redis"
    )


@pytest.fixture(scope="session")
def profile():
    return current_profile()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    """The suite's own Redis: it restarts it, which the machine's shared one must never be."""
    if not PrivateRedis.available():
        pytest.skip("the fault suite starts its own redis-server, which is not installed")
    server = PrivateRedis(workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_broker(private_redis, profile):
    """This process sends its messages to the private Redis too, through a broker built like
    the one in settings, and publishes its queue controls (a pause, a resume) there, where the
    fleet reads them."""
    private_redis.client().flushall()
    config = settings.DRAMATIQ_BROKER
    broker = import_string(config["BROKER"])(
        middleware=[
            load_middleware(path, **DjangoDramatiqConfig.get_middleware_kwargs(path))
            for path in config["MIDDLEWARE"]
        ],
        **{
            **config["OPTIONS"],
            "url": private_redis.url,
            "heartbeat_timeout": profile.heartbeat_timeout_ms,
            "maintenance_chance": profile.maintenance_chance,
        },
    )
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    with override_settings(REDIS_URL=private_redis.url):
        control_client.cache_clear()
        yield broker
    control_client.cache_clear()
    dramatiq.set_broker(previous)
    broker.close()


@pytest.fixture
def fleet(fault_broker, private_redis, transactional_db, tmp_path, profile):
    """The scenario's processes; all stopped (resumed first if paused) before the database is
    flushed."""
    fleet = Fleet(redis=private_redis, log_dir=tmp_path, profile=profile)
    yield fleet
    fleet.stop_all()


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section(f"fault injection, {current_profile().name} configuration")
    terminalreporter.write_line(table(RESULTS))
    if path := results_path():
        write_json(RESULTS, path)
        terminalreporter.write_line(f"results written to {path}")
