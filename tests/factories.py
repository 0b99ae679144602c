"""factory_boy factories for the domain models."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from stdnum.cn import uscc

from agencies.models import Agency, Membership
from lists.models import CreditList, Listing, Subject, SubjectType
from lists.services.subjects import reindex_subject_names


def valid_uscc(n: int) -> str:
    """Return a check-digit-valid USCC built from a number."""
    body = f"91110000{n:09d}"
    return body + uscc.calc_check_digit(body)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@agency.example")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):  # type: ignore[no-untyped-def]
        if create:
            instance.save()


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"agency-{n}")
    name_zh = factory.Sequence(lambda n: f"测试机关{n}")
    name_en = factory.Sequence(lambda n: f"Test agency {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    agency = factory.SubFactory(AgencyFactory)
    role = Membership.Role.UPLOADER


class SubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subject
        skip_postgeneration_save = True

    subject_type = SubjectType.LEGAL_PERSON
    name = factory.Sequence(lambda n: f"北京测试{n}科技有限公司")
    # Far from the numbers tests pass to valid_uscc() themselves, so the two never collide.
    uscc = factory.Sequence(lambda n: valid_uscc(500_000_000 + n))
    region_code = "110105"

    @factory.post_generation
    def index_names(obj, create, extracted, **kwargs):  # type: ignore[no-untyped-def]  # noqa: N805
        if create:
            reindex_subject_names(obj)


class ListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Listing

    subject = factory.SubFactory(SubjectFactory)
    credit_list = factory.LazyFunction(lambda: CreditList.objects.get(code="TAX_MAJOR_VIOLATION"))
    source_key = factory.Sequence(lambda n: f"税稽罚〔2025〕{n}号")
    reference = factory.LazyAttribute(lambda o: o.source_key)
    reason = "虚开增值税专用发票"
    decided_on = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=30))
    published_on = factory.LazyAttribute(lambda o: o.decided_on)
    expires_on = factory.LazyAttribute(lambda o: o.decided_on + dt.timedelta(days=3 * 365))
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyFunction(timezone.now)
    last_changed_at = factory.LazyFunction(timezone.now)
