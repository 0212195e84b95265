"""Model uploads in the browser: upload, list, rename, delete, and quantize one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from quantjobs import selectors, services
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
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        if uploaded.size > limit:
            form.add_error("file", f"Uploads are limited to {limit / 1e9:.1f} GB.")
        else:
            try:
                upload = model_upload_store(user_id=request.user.pk, uploaded=uploaded)
            except UploadError as exc:
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
    try:
        services.upload_rename(upload=upload, filename=request.POST.get("filename", ""))
    except services.JobInputError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Upload renamed.")
    return redirect("upload-list")


@login_required
@require_POST
def upload_delete(request: HttpRequest, pk: str) -> HttpResponse:
    """Delete an upload and its files."""
    upload = selectors.upload_get_for_user(user=request.user, upload_id=pk)
    name = upload.filename
    try:
        services.upload_remove(upload=upload)
    except services.JobInputError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted {name}.")
    return redirect("upload-list")
