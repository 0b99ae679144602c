import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lists.services.cases import escalate_overdue_cases


class Command(BaseCommand):
    help = "Flag objections and repair applications past their deadline and e-mail the agency admins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--today", type=dt.date.fromisoformat, help="Treat this date as today (YYYY-MM-DD)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = escalate_overdue_cases(today=options["today"])
        self.stdout.write(f"{count} overdue case(s) escalated")
