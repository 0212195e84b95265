"""The answer of an accuracy-aware search job, as the API documents it."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class SearchCandidateOutput(serializers.Serializer[dict[str, Any]]):
    """One candidate of a search, in the order it would be tried."""

    format = serializers.CharField()
    projected_bytes = serializers.IntegerField(
        allow_null=True, help_text="The planner's projected file size; null if unknown."
    )


class SearchTrialOutput(serializers.Serializer[dict[str, Any]]):
    """One candidate measured against the bar."""

    format = serializers.CharField()
    value = serializers.FloatField(
        allow_null=True, help_text="The measured loss; null if it could not be made."
    )
    passed = serializers.BooleanField()
    reason = serializers.CharField()


class SearchOutput(serializers.Serializer[dict[str, Any]]):
    """An accuracy-aware search: its bar, candidates, trail and answer.

    Empty (``{}``) for a job that is not a search, so every key is optional.
    """

    metric = serializers.ChoiceField(
        choices=["perplexity_change_pct", "kl_divergence", "exact_match_drop_points"],
        required=False,
    )
    max = serializers.FloatField(required=False, help_text="The bar: metric <= max.")
    label = serializers.CharField(required=False)
    candidates = SearchCandidateOutput(many=True, required=False)
    size_basis = serializers.CharField(required=False)
    trail = SearchTrialOutput(many=True, required=False)
    answer = serializers.CharField(
        allow_null=True, required=False, help_text="The format that passed, if any."
    )
    closest = serializers.CharField(allow_null=True, required=False)
    closest_value = serializers.FloatField(allow_null=True, required=False)
    summary = serializers.CharField(required=False, allow_blank=True)
    finished = serializers.BooleanField(required=False)
