"""Forms of the public site."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _


class VerifyForm(forms.Form):
    """A report number and the content hash printed on the report."""

    number = forms.CharField(label=_("Report number"), max_length=32)
    sha256 = forms.RegexField(
        label=_("Content SHA-256"), regex=r"^\s*[0-9a-fA-F]{64}\s*$", max_length=80,
        error_messages={"invalid": _("Enter the 64 hexadecimal characters printed on the report.")},
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Labels stand above their fields, so no ":" (which Chinese would write as "：").
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
