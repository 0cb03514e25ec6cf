"""The columns docpipe writes in every row: their names, types and meanings, defined here once.

`output.py` turns the type names into Arrow types for the Parquet schema (`output.arrow_type`),
and `jobs.py` reserves the names, so that no job field can take one; neither list can drift from
the other. The types are given by name so that loading a job imports no pyarrow.
"""

from __future__ import annotations

__all__ = ["BASE_COLUMNS", "RESERVED_COLUMNS", "TRAILING_COLUMNS"]

# (name, Arrow type name, description) of the columns every row has, in order. Job fields and
# manifest metadata columns come between `doc_sha256` and `status`.
BASE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("doc_id", "string", "the document's id (manifest `id`, or path relative to the input folder)"),
    ("source", "string", "where the document came from (relative path, or manifest:line for inline text)"),
    ("doc_sha256", "string", "SHA-256 of the extracted text: what 'the same document' means"),
)
TRAILING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("status", "dictionary<string>", "ok or error"),
    ("error_type", "string", "why it failed: extraction_error, refusal, schema_mismatch, overloaded_error..."),
    ("error_message", "string", "what went wrong and what to do, for a person"),
    ("model", "string", "the model that answered"),
    ("mode", "dictionary<string>", "realtime or batch (Message Batches, priced at the batch discount)"),
    ("stop_reason", "string", "the API's stop_reason"),
    ("input_tokens", "int64", "uncached input tokens billed"),
    ("output_tokens", "int64", "output tokens billed (thinking included)"),
    ("cache_read_tokens", "int64", "input tokens read from the prompt cache"),
    ("cache_write_tokens", "int64", "input tokens written to the prompt cache"),
    ("cost_usd", "float64", "list-price cost of the document's responses (batch discount applied in batch mode)"),
    ("latency_ms", "float64", "wall time of the successful attempt (realtime; null in batch mode)"),
    ("attempts", "int32", "attempts made, retries included"),
    ("request_id", "string", "the API's request-id of the last attempt"),
    ("streamed", "bool", "whether the response was streamed"),
    ("truncated", "bool", "whether the document was cut to job.max_document_tokens"),
    ("input_kind", "dictionary<string>", "what was sent: text, or pdf (the file itself, as the model sees it)"),
    ("input_pages", "int32", "a PDF's page count"),
    ("request_count", "int32", "requests it took: 1, or a chunked document's pieces plus the one combining them"),
    ("job", "string", "the job's name"),
    ("job_fingerprint", "string", "hash of everything in the job that changes the answer"),
    ("run_id", "string", "the run that wrote the row"),
    ("backend", "string", "api or emulator"),
    ("created_at", "timestamp[us, tz=UTC]", "when the row was written (UTC)"),
    ("source_size", "int64", "size in bytes of the source file (quick change check)"),
    ("source_mtime_ns", "int64", "modification time of the source file (quick change check)"),
)
# A job field may not take any of these names.
RESERVED_COLUMNS = frozenset(name for name, _, _ in BASE_COLUMNS + TRAILING_COLUMNS)
