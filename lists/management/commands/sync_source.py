from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lists.models import Source
from lists.services.sync import SyncFailed, sync_source


class Command(BaseCommand):
    help = "Sync one list from its source now (the same service as the scheduled task, without retries)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("list_code", help="The credit list's code, e.g. CUSTOMS_AEO")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(credit_list__code=options["list_code"]).first()
        if source is None:
            raise CommandError(f"list {options['list_code']} has no source")
        try:
            batch = sync_source(source_id=source.pk)
        except SyncFailed as exc:
            raise CommandError(f"sync failed, source marked unhealthy: {exc}") from exc
        if batch is None:
            self.stdout.write("nothing to do (no new records, or another run holds the source)")
        else:
            self.stdout.write(f"batch #{batch.pk}: {batch.status} {batch.counts}")
