import dramatiq
import pytest
from django.conf import settings

from jobs.control_state import SNAPSHOT_KEY, control_client, controls_view
from tests.workers import WorkerProcess


def pytest_configure(config):
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        pytest.exit(
            "Steward's tests need PostgreSQL: run them with `make test`, or set DATABASE_URL "
            "to a postgres:// URL.",
            returncode=2,
        )


@pytest.fixture(autouse=True)
def no_published_controls():
    """Each test starts with no queue controls published, as a fresh Redis has none."""
    control_client().delete(SNAPSHOT_KEY)
    controls_view.forget()
    yield
    controls_view.forget()


@pytest.fixture
def broker():
    """The real Redis broker from settings, emptied before the test."""
    redis_broker = dramatiq.get_broker()
    redis_broker.flush_all()
    yield redis_broker
    redis_broker.flush_all()


@pytest.fixture
def worker_process(broker, transactional_db, tmp_path):
    """A real `manage.py rundramatiq` subprocess against the test database and Redis."""
    process = WorkerProcess(log_path=tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()
