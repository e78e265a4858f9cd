"""Create deterministic demo data with work for every job, none of it overdue enough to alert."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.services.demo import DemoDataExists, DemoPlan, demo_seed

MAX_USERS = 2_000_000


class Command(BaseCommand):
    help = "Create deterministic demo users, wallets, escrows, matches and cycles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--users",
            type=int,
            default=200,
            help=f"Number of demo users (2 to {MAX_USERS:,}; default 200).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=42,
            help="Random seed: the same seed gives the same data (default 42).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already has wallets.",
        )

    def handle(self, *args, **options) -> None:
        users = options["users"]
        if not 2 <= users <= MAX_USERS:
            raise CommandError(f"--users must be between 2 and {MAX_USERS:,}, got {users}")
        from ledger.models import Wallet

        if options["if_empty"] and Wallet.objects.exists():
            self.stdout.write("Database already has data; not seeding.")
            return
        try:
            summary = self._seed(users=users, seed=options["seed"])
        except DemoDataExists as exc:
            raise CommandError(f"{exc}; pick another --seed") from None
        self.stdout.write(self.style.SUCCESS("Demo data created:"))
        for key, value in summary.items():
            self.stdout.write(f"   {key}: {value:,}")

    def _seed(self, *, users: int, seed: int) -> dict:
        from django.db import transaction

        from leaderboard.services.demo import leaderboard_demo_seed
        from ledger.models import Wallet

        with transaction.atomic():
            summary = demo_seed(plan=DemoPlan(users=users, seed=seed))
            wallets = Wallet.objects.filter(user__username__startswith=f"demo-{seed}-")
            return {**summary, **leaderboard_demo_seed(wallets=wallets, seed=seed)}
