"""`docpipe init` and `docpipe check`: a job file to start from, and a job (and its input) checked without a request.

The starter job names every key a job may set, each with its default and what it does, so that a
new job is an edit rather than a search through the README. `check` loads a job as a run would
(every problem names the file and the key), then, given an input, reads it as a run would (every
row, without extracting files or sending anything) and says what it found.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ExtractionError
from .job_fields import NAME_RE
from .jobs import Job

if TYPE_CHECKING:
    from .refs import DocumentRef

__all__ = ["check_job", "starter_job"]

CHECK_LISTED_ERRORS = 10

STARTER = '''# {name}: a docpipe job. Run it with
#   docpipe run {file} INPUT --out results/{name}        (INPUT: a folder, a manifest, or one document)
# Every key below is optional but [job].instructions and one [[fields]]; the values shown are the defaults.

[job]
name = "{name}"
description = "What this job is for."
model = "claude-haiku-5-5"       # any model id or alias the API serves; --model overrides it
max_tokens = 1024                # the answer's budget; over 21,333 the request streams
instructions = """
Read the document and fill in the fields below. Base every answer on the document alone.
"""
# Details of each document may be named in braces: a manifest column ({{customer}}) or
# {{doc_id}}, {{file_name}}, {{file_size}}, {{modified}}; each request carries its own values.

# timeout_s = 120                # per request
# stream = "auto"                # "always" or "never"
# too_long = "truncate"          # "error" or "chunk" (pieces, then one request to combine their answers)
# truncate = "head"              # or "head_and_tail"
# max_document_tokens = 100000   # one request's document at most
# pdf = "auto"                   # "native" (the PDF itself) or "text"; auto: native for scans
# attachments = "sections"       # or "documents": each attachment of an e-mail a row of its own
# cache_ttl = "5m"               # "1h" or "off"; unset: 5m realtime, 1h in batch mode
# cache_warmup = true            # the first request goes alone, the rest once its response begins
# batch_above = 1000             # --mode auto: Message Batches from this many documents
# batch_retry = "batch"          # or "realtime": what a batch left unanswered is sent at once
# effort = "medium"              # for models that take it: low, medium, high, xhigh, max
# schema_retries = 2             # an answer that fails the schema is asked again this many times
# context_window = 200000        # only for a model docpipe's table does not know (else the API says)
# max_output_tokens = 64000      # likewise

# [retry]
# max_attempts = 8
# max_time_s = 600
# initial_backoff_s = 0.5
# max_backoff_s = 30

# [limits]                       # the account's rate limits (else learned from the API's headers)
# rpm = 4000
# itpm = 2000000
# otpm = 400000

# [prices]                       # USD per million tokens of this job's model (not of one --model puts in its place)
# input_usd = 0.10
# output_usd = 0.50

[[fields]]
name = "category"
type = "enum"                    # string, enum, number, integer, boolean, date, list
description = "What kind of document this is."
values = {{ invoice = "A bill or payment request.", contract = "An agreement.", other = "Anything else." }}

[[fields]]
name = "summary"
type = "string"
description = "A short factual summary."
max_words = 50

[[fields]]
name = "due_date"
type = "date"
description = "The payment or action deadline, if the document states one."
required = false                 # may be null

# [[examples]]                   # few-shot examples, in the cached prefix, checked against the fields
# input = "Invoice 7 from Acme Ltd for 400 EUR, due 1 May 2026."
# output = {{ category = "invoice", summary = "Acme invoice 7, 400 EUR due 1 May 2026.", due_date = 2026-05-01 }}
'''


def starter_job(name: str, file: str) -> str:
    """The text of a starter job named `name`, to be saved as `file`."""
    if not NAME_RE.match(name):
        raise ConfigError(f"job name {name!r}: use lower-case letters, digits and _ (starting with a letter)")
    return STARTER.format(name=name, file=file)


def check_job(job: Job, input_path: Path | None) -> tuple[list[str], int]:
    """What a check says of a job and, given one, its input: lines for a person, and the rows that would be errors.

    A job or input that cannot be used at all is a `ConfigError`.
    """
    from .details import check, placeholders
    from .plans import Planner

    planner = Planner(job)
    named = placeholders(job.instructions)
    lines = [
        f"docpipe: job {job.name!r} is valid (fingerprint {job.fingerprint})",
        f"  model {job.model}, max_tokens {job.max_tokens:,}, {len(job.fields)} field(s): "
        + ", ".join(f"{field.name} ({field.type})" for field in job.fields),
        f"  shared prefix about {planner.prefix_estimate:,} tokens"
        + ("" if planner.prefix_cacheable() else " (too short to be cached)")
        + (f", {len(job.examples)} example(s)" if job.examples else "")
        + (f"; document details named: {', '.join(named)}" if named else ""),
    ]
    if job.model_note:
        lines.append(f"  {job.model_note}")
    if input_path is None:
        return lines, 0
    from .sources import manifest_metadata_columns, open_source

    if not input_path.exists():
        raise ConfigError(f"input not found: {input_path}")
    columns = manifest_metadata_columns(input_path)
    check(job.instructions, columns, input_name=str(input_path))
    documents, errors = 0, Counter[str]()
    listed: list[str] = []
    skipped: Counter[str] = Counter()
    for ref in open_source(input_path, skipped=skipped):
        documents += 1
        kind, message = (ref.error.error_type, ref.error.message) if ref.error is not None else _empty(ref)
        if kind:
            errors[kind] += 1
            if len(listed) < CHECK_LISTED_ERRORS:
                listed.append(f"  error  {ref.doc_id}: {_one_line(message)}")
    kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(errors.items()))
    lines.append(
        f"  input {input_path}: {documents:,} document(s)"
        + (f", columns: {', '.join(columns)}" if columns else "")
        + (f"; {sum(errors.values()):,} would be error rows ({kinds})" if errors else "; no row in error")
    )
    if skipped:
        lines.append("  not documents, left out: " + ", ".join(f"{kind} x{count}" for kind, count in skipped.items()))
    return lines + listed, sum(errors.values())


def _empty(ref: DocumentRef) -> tuple[str, str]:
    """The run's error type and message for blank inline text or an empty file; else ("", "").

    What only reading a file tells (a binary file, a corrupt PDF) a check leaves to the run.
    """
    if ref.text is not None:
        blank = not ref.text.strip()
    else:
        try:
            blank = ref.path is not None and ref.path.stat().st_size == 0
        except OSError:
            blank = False  # unreadable: the run says why
    return (ExtractionError.error_type, ExtractionError.EMPTY) if blank else ("", "")


def _one_line(text: str, limit: int = 160) -> str:
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."
