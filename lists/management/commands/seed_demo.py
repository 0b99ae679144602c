import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lists.services.demo import seed_demo


class Command(BaseCommand):
    help = "Create synthetic demo subjects and listings (marked synthetic everywhere they show)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subjects", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        summary = seed_demo(subjects=options["subjects"], seed=options["seed"])
        self.stdout.write(
            f"{summary.subjects} subjects, {summary.listings} listings, {summary.changes} changes, "
            f"{summary.restrictions} restrictions in {time.monotonic() - started:.1f} s"
        )
