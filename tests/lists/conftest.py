"""Fixtures of the batch tests: the tax list, an uploader and an approver of its agency."""

from __future__ import annotations

import pytest

from agencies.models import Membership
from lists.models import CreditList
from tests.factories import MembershipFactory


@pytest.fixture
def tax_list() -> CreditList:
    return CreditList.objects.get(code="TAX_MAJOR_VIOLATION")


@pytest.fixture
def uploader(tax_list):  # type: ignore[no-untyped-def]
    return MembershipFactory(agency=tax_list.agency, role=Membership.Role.UPLOADER).user


@pytest.fixture
def approver(tax_list):  # type: ignore[no-untyped-def]
    return MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
