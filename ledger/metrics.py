"""Business lag for Prometheus: escrows past their hold that are still waiting."""

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from ledger.selectors import escrow_release_lag


class EscrowLagCollector:
    def collect(self):
        lag = escrow_release_lag(as_of=timezone.now())
        yield GaugeMetricFamily(
            "steward_escrows_overdue",
            "Escrows past their hold, still holding.",
            value=lag.overdue_count,
        )
        yield GaugeMetricFamily(
            "steward_escrows_overdue_amount_kobo",
            "Money in escrows past their hold, in kobo.",
            value=lag.overdue_amount,
        )
        yield GaugeMetricFamily(
            "steward_escrows_overdue_oldest_age_seconds",
            "How long the oldest overdue escrow has waited past its hold.",
            value=lag.oldest_overdue_seconds,
        )
