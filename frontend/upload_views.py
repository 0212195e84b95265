"""Model uploads in the browser: upload, list, rename, delete, and quantize one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from frontend.commands import command_redirect
from quantjobs import selectors, services
from quantjobs.broker import BrokerUnavailable
from quantjobs.uploads import UploadError, model_upload_store


class UploadForm(forms.Form):
    """A model file: a .gguf, or a .tar/.zip of a safetensors model folder."""

    file = forms.FileField(
        label="Model file",
        help_text="A .gguf file, or a .tar or .zip of a model folder (config.json, "
        "tokenizer, *.safetensors). Pickle files (.bin, .pt) are refused.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload_list(request: HttpRequest) -> HttpResponse:
    """The user's uploads, a form to add one, and storage against the quota."""
    posted = request.method == "POST"
    form = UploadForm(
        request.POST if posted else None, request.FILES if posted else None
    )
    limit = settings.QUANTPLAN_MAX_UPLOAD_BYTES
    if "uploaded" in request.GET:  # where the resumable upload's script lands
        done = selectors.upload_get_for_user(
            user=request.user, upload_id=request.GET["uploaded"]
        )
        messages.success(request, f"Uploaded {done.filename}.")
        return redirect("upload-list")
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        try:
            services.upload_check_room(user=request.user)
        except services.QuotaExceeded as exc:
            form.add_error("file", str(exc))
        if form.errors:
            pass
        elif uploaded.size > limit:
            form.add_error("file", f"Uploads are limited to {limit / 1e9:.1f} GB.")
        else:
            try:
                upload = model_upload_store(user_id=request.user.pk, uploaded=uploaded)
            except (UploadError, BrokerUnavailable) as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"Uploaded {upload.filename}.")
                return redirect("upload-list")
    return render(
        request,
        "frontend/upload_list.html",
        {
            "form": form,
            "uploads": selectors.upload_list_for_user(user=request.user),
            "storage": selectors.storage_for_user(user=request.user),
            "limit_bytes": limit,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def upload_rename(request: HttpRequest, pk: str) -> HttpResponse:
    """Rename an upload."""
    upload = selectors.upload_get_for_user(user=request.user, upload_id=pk)
    return command_redirect(
        request,
        lambda: services.upload_rename(
            upload=upload, filename=request.POST.get("filename", "")
        ),
        refused=(services.JobInputError,),
        success="Upload renamed.",
        done=reverse("upload-list"),
    )


@login_required
@require_POST
def upload_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete an upload and its files."""
    upload = selectors.upload_get_for_user(user=request.user, upload_id=pk)
    return command_redirect(
        request,
        lambda: services.upload_remove(upload=upload),
        refused=(services.JobInputError,),
        success=f"Deleted {upload.filename}.",
        done=reverse("upload-list"),
    )


def _tus_headers(response: HttpResponse) -> HttpResponse:
    from quantjobs.tus import TUS_VERSION

    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    return response


def _tus_error(exc: Exception) -> HttpResponse:
    status = getattr(exc, "status", 400)
    return _tus_headers(JsonResponse({"detail": str(exc)}, status=status))


def _int_header(request: HttpRequest, name: str) -> int | None:
    raw = request.headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@login_required
@require_http_methods(["OPTIONS", "POST"])
def tus_collection(request: HttpRequest) -> HttpResponse:
    """tus: OPTIONS says what the server supports; POST creates an upload."""
    from quantjobs import tus

    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Tus-Version"] = tus.TUS_VERSION
        response["Tus-Extension"] = "creation,termination"
        response["Tus-Max-Size"] = str(settings.QUANTPLAN_MAX_UPLOAD_BYTES)
        return _tus_headers(response)
    try:
        upload = tus.tus_create(
            user=request.user,
            length_bytes=_int_header(request, "Upload-Length"),
            metadata=tus.parse_metadata(request.headers.get("Upload-Metadata", "")),
        )
    except tus.TusError as exc:
        return _tus_error(exc)
    response = HttpResponse(status=201)
    response["Location"] = reverse("upload-tus-detail", args=[upload.pk])
    return _tus_headers(response)


@login_required
@require_http_methods(["HEAD", "PATCH", "DELETE", "GET"])
def tus_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """tus: HEAD gives the offset, PATCH appends, DELETE abandons; GET (not tus) says
    whether the finished file was accepted as a model upload, or why not."""
    from quantjobs import tus

    upload = selectors.tus_upload_get_for_user(user=request.user, tus_id=pk)
    if request.method == "GET":
        return _tus_headers(JsonResponse(tus.tus_status(upload)))
    if request.method == "DELETE":
        tus.tus_delete(upload=upload)
        return _tus_headers(HttpResponse(status=204))
    if request.method == "HEAD":
        response = HttpResponse(status=200)
        response["Upload-Offset"] = str(upload.offset_bytes)
        response["Upload-Length"] = str(upload.length_bytes)
        return _tus_headers(response)
    if request.content_type != "application/offset+octet-stream":
        return _tus_error(
            tus.TusError(
                "PATCH needs Content-Type: application/offset+octet-stream.", status=415
            )
        )
    try:
        upload = tus.tus_append(
            upload=upload,
            offset_bytes=_int_header(request, "Upload-Offset"),
            stream=request,
        )
    except tus.TusError as exc:
        return _tus_error(exc)
    response = HttpResponse(status=204)
    response["Upload-Offset"] = str(upload.offset_bytes)
    return _tus_headers(response)
