import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from agencies.models import Agency, Membership

DEMO_ROLES = {"demo-uploader": Membership.Role.UPLOADER, "demo-approver": Membership.Role.APPROVER}


class Command(BaseCommand):
    help = "Create two demo staff accounts (uploader, approver) for one agency; for local trials only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agency", default="sta", help="agency code (default: sta, tax lists)")
        parser.add_argument("--password", help="password for both (default: a random one, printed)")

    def handle(self, *args: Any, **options: Any) -> None:
        agency = Agency.objects.filter(code=options["agency"]).first()
        if agency is None:
            raise CommandError(f"no agency {options['agency']!r}: run load_reference first")
        password = options["password"] or secrets.token_urlsafe(12)
        with transaction.atomic():
            for username, role in DEMO_ROLES.items():
                user, _ = get_user_model().objects.get_or_create(username=username)
                user.set_password(password)
                user.save(update_fields=["password"])
                Membership.objects.get_or_create(user=user, agency=agency, role=role)
        self.stdout.write(
            f"staff sign-in: demo-uploader / demo-approver, password {password} ({agency.name_zh})"
        )
