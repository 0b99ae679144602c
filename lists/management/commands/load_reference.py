from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lists.services.reference import load_reference


class Command(BaseCommand):
    help = "Load agencies, the national credit lists and the measure catalogue (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--catalogue", type=Path, help="A catalogue JSON file (default: the bundled one)")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = load_reference(catalogue_path=options["catalogue"])
        note = "new edition, now current" if summary.is_new_edition else "edition already loaded"
        self.stdout.write(
            f"{summary.agencies} agencies, {summary.lists} lists, {summary.measures} measures "
            f"(catalogue {summary.edition}: {note})"
        )
