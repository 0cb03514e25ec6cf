"""Paging of the list endpoints (batches, models): the `limit` query parameter, the same everywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .api_errors import ApiError

__all__ = ["DEFAULT_PAGE_LIMIT", "MAX_PAGE_LIMIT", "page_limit"]

DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 1000
PAGE_LIMIT_RE = re.compile(r"[+-]?[0-9]{1,12}")


def page_limit(query: Mapping[str, str]) -> int:
    """A list endpoint's `limit`: an integer from 1 to 1000, 20 when absent (SDK `model_list_params.py`,
    `messages/batch_list_params.py`: "Defaults to `20`. Ranges from `1` to `1000`.")."""
    raw = query.get("limit", str(DEFAULT_PAGE_LIMIT))
    if not PAGE_LIMIT_RE.fullmatch(raw):
        raise ApiError(400, "invalid_request_error", f"limit: Input should be a valid integer, got {raw!r}")
    limit = int(raw)
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ApiError(400, "invalid_request_error", f"limit: Input should be between 1 and {MAX_PAGE_LIMIT}")
    return limit
