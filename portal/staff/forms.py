"""Forms of the staff area: upload, column mapping, publish, reject, roll back."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from lists.importers import FORMATS, ListSchema
from lists.models import Batch, CreditList


class UploadForm(forms.Form):
    credit_list = forms.ModelChoiceField(
        queryset=CreditList.objects.none(), label="名单 List", to_field_name="code"
    )
    mode = forms.ChoiceField(choices=Batch.Mode.choices, initial=Batch.Mode.INCREMENTAL, label="方式 Mode")
    file = forms.FileField(label="文件 File (CSV, XLSX, XLS)")
    file_format = forms.ChoiceField(
        choices=[("", "自动识别 Detect"), *[(f, f) for f in FORMATS]],
        required=False,
        label="格式 Format",
        help_text="Leave on Detect unless the file uses the key/value layout (one field per line).",
    )

    def __init__(self, *args: Any, lists: QuerySet[CreditList], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["credit_list"].queryset = lists  # type: ignore[attr-defined]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size / 1048576:.1f} MB; files of at most {limit / 1048576:.1f} MB are accepted."
            )
        return upload


class MappingForm(forms.Form):
    """One choice per column of the file: which field it feeds, or none."""

    def __init__(self, *args: Any, columns: list[dict[str, Any]], schema: ListSchema, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [
            ("", "— 不导入 ignore —"),
            *[(f.name, f"{f.label or f.name} ({f.name})") for f in schema.fields()],
        ]
        self.columns = columns
        for i, column in enumerate(columns):
            self.fields[f"col_{i}"] = forms.ChoiceField(
                choices=choices,
                required=False,
                initial=column.get("field") or "",
                label=column["header"],
                help_text=" ".join(filter(None, [column.get("confidence"), column.get("note")])),
            )

    def overrides(self) -> dict[str, str | None]:
        """Return the confirmed mapping as {header: field or None}."""
        return {c["header"]: self.cleaned_data[f"col_{i}"] or None for i, c in enumerate(self.columns)}


class PublishForm(forms.Form):
    skip_invalid = forms.BooleanField(
        required=False, label="发布时跳过无效行 Publish without the invalid rows"
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=2000, label="理由 Reason", widget=forms.Textarea(attrs={"rows": 2})
    )


class RollbackForm(forms.Form):
    confirm = forms.BooleanField(label="我确认撤回此批次 I confirm rolling this batch back")
