"""Exports, watchlists, webhooks and agency push."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponseNotModified
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agencies.models import ApiKey
from lists.models import Batch, CreditList, Export, Watchlist, Webhook, WebhookDelivery
from lists.services import exports, webhooks

from ..security import client_ip
from . import serializers as s
from .permissions import CanPush, HasKey, key_of


def _key(request: Request) -> ApiKey:
    """Return the request's key (views using this require HasKey or a scope)."""
    key = key_of(request)
    assert key is not None
    return key


class ExportList(generics.ListAPIView):
    """The newest bulk export of each list (and of all lists) in each format."""

    serializer_class = s.ExportSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Export]:
        return (
            Export.objects.select_related("credit_list")
            .order_by("credit_list_id", "format", "-seq", "-id")
            .distinct("credit_list_id", "format")
        )


class ExportFile(APIView):
    """Download an export (`all` or a list code; `csv` or `jsonl`). ETag is its sha256; 304 on If-None-Match."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 304: None})
    def get(self, request: Request, scope: str, fmt: str) -> HttpResponseBase:
        if fmt not in Export.Format.values:
            raise Http404("unknown format")
        credit_list = None if scope == "all" else get_object_or_404(CreditList.objects.public(), code=scope)
        export = exports.latest_export(credit_list=credit_list, fmt=fmt)
        if export is None:
            raise Http404("no export yet")
        etag = f'"{export.sha256}"'
        headers = {"ETag": etag, "X-Data-Version": str(export.seq), "X-Sha256": export.sha256}
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            not_modified = HttpResponseNotModified()
            for name, value in headers.items():
                not_modified[name] = value
            return not_modified
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        response = FileResponse(
            export.file.open("rb"),
            as_attachment=True,
            filename=f"{scope}-{export.seq}.{fmt}",
            content_type=content_type,
        )
        for name, value in headers.items():
            response[name] = value
        return response


class WatchlistListCreate(generics.ListCreateAPIView):
    """The key's watchlists; create one with identifiers and/or names to watch."""

    permission_classes = [HasKey]
    serializer_class = s.WatchlistSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Watchlist]:
        return Watchlist.objects.filter(api_key=key_of(self.request)).prefetch_related("items")

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = webhooks.create_watchlist(
            api_key=_key(self.request), name=data["name"], items=data["items"]
        )


class WatchlistDetail(generics.RetrieveDestroyAPIView):
    """One watchlist of the key."""

    permission_classes = [HasKey]
    serializer_class = s.WatchlistSerializer

    def get_queryset(self) -> QuerySet[Watchlist]:
        return Watchlist.objects.filter(api_key=key_of(self.request)).prefetch_related("items")


class WebhookListCreate(generics.ListCreateAPIView):
    """The key's webhooks; the signing secret is shown once, in the answer to the creation."""

    permission_classes = [HasKey]
    serializer_class = s.WebhookSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Webhook]:
        return Webhook.objects.filter(api_key=key_of(self.request))

    @extend_schema(responses={201: s.WebhookCreatedSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = s.WebhookSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        watchlist = form.validated_data["watchlist"]
        if watchlist.api_key_id != _key(request).pk:
            raise serializers.ValidationError({"watchlist": "not one of this key's watchlists"})
        webhook = webhooks.create_webhook(
            api_key=_key(request), watchlist=watchlist, url=form.validated_data["url"]
        )
        return Response(s.WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)


class DeliveryList(generics.ListAPIView):
    """The delivery log of one of the key's webhooks, newest first."""

    permission_classes = [HasKey]
    serializer_class = s.WebhookDeliverySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return WebhookDelivery.objects.none()
        webhook = get_object_or_404(Webhook, pk=self.kwargs["pk"], api_key=key_of(self.request))
        return webhook.deliveries.order_by("-pk")[:200]


class DeliveryReplay(APIView):
    """Send a delivery again (it is queued now; the log keeps every attempt)."""

    permission_classes = [HasKey]

    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer})
    def post(self, request: Request, pk: int, delivery_pk: int) -> Response:
        delivery = get_object_or_404(
            WebhookDelivery, pk=delivery_pk, webhook_id=pk, webhook__api_key=key_of(request)
        )
        webhooks.replay_delivery(delivery=delivery)
        from lists import tasks

        tasks.deliver_webhook.delay_on_commit(delivery.pk)
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


def _own_list(request: Request, code: str) -> CreditList:
    credit_list = get_object_or_404(CreditList, code=code)
    key = key_of(request)
    if key is None or key.agency_id != credit_list.agency_id:
        raise PermissionDenied("This key's agency does not own the list.")
    return credit_list


class BatchPush(APIView):
    """Agency push: upload a file into the same pipeline as the staff page (approval rules unchanged)."""

    permission_classes = [CanPush]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": s.BatchPushSerializer}, responses={202: s.BatchStatusSerializer}
    )
    def post(self, request: Request, code: str) -> Response:
        credit_list = _own_list(request, code)
        form = s.BatchPushSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        from lists.services.batches.processing import BatchError, receive_batch

        upload = form.validated_data["file"]
        try:
            batch = receive_batch(
                credit_list=credit_list,
                payload=upload.read(),
                filename=upload.name,
                mode=form.validated_data["mode"],
                origin=Batch.Origin.API,
                api_key=key_of(request),
                file_format=form.validated_data.get("file_format"),
                ip_address=client_ip(request),
            )
        except BatchError as exc:
            raise serializers.ValidationError({"file": str(exc)}) from None
        return Response(s.BatchStatusSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


class BatchStatus(generics.RetrieveAPIView):
    """A pushed batch's progress and counts."""

    permission_classes = [CanPush]
    serializer_class = s.BatchStatusSerializer

    def get_object(self) -> Batch:
        credit_list = _own_list(self.request, self.kwargs["code"])
        return get_object_or_404(
            Batch.objects.select_related("credit_list"), pk=self.kwargs["pk"], credit_list=credit_list
        )
