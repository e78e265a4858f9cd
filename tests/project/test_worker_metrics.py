"""Each worker's Dramatiq exporter has no authentication: it listens on loopback unless
dramatiq_prom_host says otherwise."""

import pytest
from dramatiq.middleware import prometheus

from jobs.middleware import WorkerMetrics, serve_worker_metrics


@pytest.fixture
def bound(monkeypatch):
    """The address the exporter binds, without binding it."""
    addresses = []

    class Server:
        def __init__(self, address, handler):
            addresses.append(address)

        def serve_forever(self):
            pass

        def server_close(self):
            pass

    monkeypatch.setattr(prometheus, "HTTPServer", Server)
    monkeypatch.setattr(prometheus, "HTTP_HOST", prometheus.HTTP_HOST)
    return addresses


def test_the_worker_forks_steward_s_exporter():
    assert WorkerMetrics().forks == [serve_worker_metrics]


def test_the_exporter_listens_on_loopback_by_default(bound, monkeypatch):
    monkeypatch.delenv("dramatiq_prom_host", raising=False)

    serve_worker_metrics()

    assert bound == [("127.0.0.1", prometheus.HTTP_PORT)]


def test_dramatiq_prom_host_binds_it_elsewhere(bound, monkeypatch):
    monkeypatch.setenv("dramatiq_prom_host", "0.0.0.0")

    serve_worker_metrics()

    assert bound == [("0.0.0.0", prometheus.HTTP_PORT)]
