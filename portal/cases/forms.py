"""Forms for filing and following objections and repair applications."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from lists.models import Case
from lists.services.cases import CaseRefused
from lists.services.evidence import EVIDENCE_MAX_FILES, check_evidence


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class EvidenceField(forms.FileField):
    """Several files in one input, each checked for size and type by its first bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png"}))
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        uploads = data if isinstance(data, list | tuple) else [data]
        files = [super(EvidenceField, self).clean(f, initial) for f in uploads if f]
        if self.required and not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(files) > EVIDENCE_MAX_FILES:
            raise forms.ValidationError(f"At most {EVIDENCE_MAX_FILES} files.")
        for upload in files:
            try:
                check_evidence(upload)
            except CaseRefused as refusal:
                raise forms.ValidationError(str(refusal)) from refusal
        return files


class ApplicantForm(forms.Form):
    applicant_name = forms.CharField(label="姓名或名称 Name", max_length=200)
    applicant_email = forms.EmailField(label="电子邮箱 E-mail")
    evidence = EvidenceField(label="证明材料 Evidence (PDF, JPEG, PNG; 10 MB each)")


class ObjectionForm(ApplicantForm):
    field = forms.ChoiceField(
        label="哪一项有误 Which item is wrong",
        choices=[c for c in Case.Field.choices if c[0]],
    )
    grounds = forms.CharField(label="理由 Why it is wrong", widget=forms.Textarea(attrs={"rows": 5}))
    field_order = ["applicant_name", "applicant_email", "field", "grounds", "evidence"]


class RepairForm(ApplicantForm):
    statement = forms.CharField(
        label="履行情况 How the obligation has been met",
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    commitment = forms.BooleanField(
        label="我承诺所提交材料真实，并作出信用承诺 I confirm the documents are true and make a credit commitment"
    )
    field_order = ["applicant_name", "applicant_email", "statement", "evidence", "commitment"]


class TrackForm(forms.Form):
    number = forms.CharField(label="案件编号 Case number", max_length=32)
    access_code = forms.CharField(label="查询码 Access code", max_length=32)

    def clean_number(self) -> str:
        return self.cleaned_data["number"].strip().upper()


class AddEvidenceForm(forms.Form):
    evidence = EvidenceField(label="补充材料 Add documents", required=True)
