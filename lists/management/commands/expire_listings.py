import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lists.services.lifecycle import expire_listings


class Command(BaseCommand):
    help = "Expire listings past their publication period (the same service as the scheduled task)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--today", type=dt.date.fromisoformat, help="Pretend today is YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        count = expire_listings(today=options["today"])
        self.stdout.write(f"{count} listings expired")
