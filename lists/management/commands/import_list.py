"""Import a list file through the same pipeline as an upload: validate, diff, optionally publish."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lists.importers import FORMATS
from lists.models import Batch, CreditList
from lists.services import batches


class Command(BaseCommand):
    help = "Validate and diff a list file (CSV/XLSX/XLS); with --publish, publish it as an operator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("list_code")
        parser.add_argument("file", type=Path)
        parser.add_argument("--mode", choices=Batch.Mode.values, required=True)
        parser.add_argument(
            "--format", choices=FORMATS, default=None, help="Default: detected from the bytes"
        )
        parser.add_argument(
            "--publish", action="store_true", help="Publish at once (an operator action, recorded)"
        )
        parser.add_argument("--skip-invalid", action="store_true", help="Publish without the invalid rows")

    def handle(self, *args: Any, **options: Any) -> None:
        credit_list = CreditList.objects.filter(code=options["list_code"]).first()
        if credit_list is None:
            raise CommandError(f"no list with code {options['list_code']}")
        operator = f"operator command ({getpass.getuser()}@{socket.gethostname()})"
        try:
            batch = batches.receive_batch(
                credit_list=credit_list,
                payload=options["file"].read_bytes(),
                filename=options["file"].name,
                mode=options["mode"],
                origin=Batch.Origin.COMMAND,
                actor=operator,
                file_format=options["format"],
            )
            # Run validation here rather than waiting for a worker: the operator is watching.
            batch = batches.process_batch(batch_id=batch.pk)
            self._report(batch)
            if options["publish"] and batch.status == Batch.Status.READY:
                batch = batches.publish_batch(
                    batch_id=batch.pk, waived_by=operator, skip_invalid=options["skip_invalid"]
                )
                self.stdout.write(f"published batch {batch.pk}: feed {batch.first_seq}..{batch.last_seq}")
        except (batches.BatchError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        if batch.status == Batch.Status.FAILED:
            raise CommandError(batch.error)

    def _report(self, batch: Batch) -> None:
        counts = batch.counts or {}
        summary = ", ".join(
            f"{k} {counts.get(k, 0)}" for k in ("rows", "invalid", "add", "change", "remove", "unchanged")
        )
        self.stdout.write(f"batch {batch.pk} {batch.status}: {summary}")
        for row in batch.rows.filter(outcome="invalid").order_by("line_no")[:10]:
            self.stdout.write(f"  line {row.line_no}: {'; '.join(row.errors)}")
