from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from lists.services.sync import create_demo_sources


class Command(BaseCommand):
    help = "Create demo sources that sync from the portal's own synthetic feed (/demo-feed/<LIST>/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the web server answers (default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The trusted demo source's waiver is attributed to a named (inactive, password-less) account.
        user, created = get_user_model().objects.get_or_create(
            username="demo-sync-admin", defaults={"is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        for source in create_demo_sources(base_url=options["base_url"], trusted_by=user):
            trust = "trusted" if source.is_trusted else "waits for approval"
            self.stdout.write(f"{source.credit_list.code}: {source.url} ({source.mode}, {trust})")
