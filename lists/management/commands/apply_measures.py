from typing import Any

from django.core.management.base import BaseCommand

from lists.services.measures import apply_measures


class Command(BaseCommand):
    help = (
        "Recompute every restriction from the current catalogue edition and write a feed entry for "
        "each in-force listing whose measures changed (the task a new catalogue edition enqueues)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = apply_measures(reason="catalogue", feed_reason="catalogue")
        self.stdout.write(f"{result.lifted} lifted, {result.derived} derived, {result.changes} feed changes")
