"""Checks on the conversation: roles and their order, content blocks, images, thinking signatures.

- Roles are `user`, `assistant` and, on the models that support it, a mid-conversation `system`
  (SDK `types/system_message_param.py`; docs: build-with-claude/mid-conversation-system-messages):
  never first, right after a user turn (or another system message), and ending the list or followed
  by an assistant turn; its content is text only, never blank.
- Text blocks are never empty nor only white space, wherever they are: messages, the system
  prompt, tool results. Only a final assistant turn (a prefill) may have empty content.
- Images come as base64 (`image/jpeg`, `image/png`, `image/gif`, `image/webp`: SDK
  `types/base64_image_source_param.py`), `url` or `file` sources. Base64 data must decode, be the
  declared format, and stay within 5 MB and 8000 pixels a side, 2000 when the request holds more
  than 20 images (docs: build-with-claude/vision).
- Thinking blocks sent back must carry the signature the emulator issued for their text (SDK
  `types/thinking_block_param.py`: "a modified block results in a 400"). The emulator never issues
  redacted_thinking blocks, so none sent back can be genuine.
Pure functions; every failure raises `invalid(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .api_errors import invalid
from .images import read_base64_image
from .signing import thinking_signature_is_valid

__all__ = ["check_messages", "check_system"]

INPUT_BLOCK_TYPES = frozenset(
    {
        "text", "image", "document", "tool_use", "tool_result", "search_result", "thinking",
        "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload",
    }
)  # fmt: skip
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE_PX = 8000  # docs: build-with-claude/vision
# At most this many images in one request. The docs give 100 in one place and 600 (1M-context models)
# in another (https://platform.claude.com/docs/en/build-with-claude/vision); the emulator takes the
# larger, so it never refuses what the API takes, and a request cannot name one image without end.
MAX_IMAGES = 600
MANY_IMAGES = 20  # more images than this in one request ...
MAX_MANY_IMAGE_SIDE_PX = 2000  # ... and each may be at most 2000 x 2000 px
DOCUMENT_SOURCES = ("base64", "text", "content", "url", "file")


@dataclass(frozen=True, slots=True)
class _Context:
    """What the block checks need from the request as a whole."""

    version: str
    seed: int
    max_image_side_px: int


def check_system(system: Any) -> None:
    """The top-level system prompt: a string, or a list of non-empty text blocks."""
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid string or list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"system.{index}: system blocks must be text blocks")
        _check_text(block, f"system.{index}")


def check_messages(messages: Any, version: str, *, seed: int) -> None:
    """The turns: roles, their order, and every block in them (what a model refuses: `model_rules.py`)."""
    if not isinstance(messages, list):
        raise invalid("messages: Field required")
    if not messages:
        raise invalid("messages: at least one message is required")
    images = _count_images(messages)
    if images > MAX_IMAGES:
        raise invalid(f"messages: too many images: {images} > {MAX_IMAGES} per request")
    many = images > MANY_IMAGES
    context = _Context(version, seed, MAX_MANY_IMAGE_SIDE_PX if many else MAX_IMAGE_SIDE_PX)
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise invalid(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            _check_system_message(messages, index)
            continue
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if index == 0 and role != "user":
            raise invalid('messages: first message must use the "user" role')
        if "content" not in message:
            raise invalid(f"{where}.content: Field required")
        _check_empty(message["content"], where, role, final=index == len(messages) - 1)
        _check_blocks(message["content"], where, role, context)


def _check_system_message(messages: list[Any], index: int) -> None:
    """Where a mid-conversation system turn may stand and what it may hold (which models take one at all
    is the model's rule: `model_rules.py`)."""
    where = f"messages.{index}"
    content = messages[index].get("content")
    if isinstance(content, str):
        if not content.strip():
            raise invalid(f"{where}: system text blocks must contain non-whitespace text")
    elif isinstance(content, list):
        if not content:
            raise invalid(f"{where}: system content must contain at least one block")
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "text":
                raise invalid(f"{where}: role 'system' supports text blocks only")
            if not isinstance(block.get("text"), str) or not block["text"].strip():
                raise invalid(f"{where}: system text blocks must contain non-whitespace text")
    else:
        raise invalid(f"{where}.content: Input should be a valid string or list of text blocks")
    if index == 0:
        raise invalid(f"{where}: use the top-level 'system' parameter for the initial system prompt")
    before = messages[index - 1].get("role") if isinstance(messages[index - 1], dict) else None
    if before not in ("user", "system"):
        raise invalid(f"{where}: role 'system' must follow a 'user' message")
    following = messages[index + 1] if index + 1 < len(messages) else None
    after = following.get("role") if isinstance(following, dict) else None
    if after not in (None, "assistant", "system"):
        raise invalid(f"{where}: role 'system' must precede an 'assistant' message or end the array")


def _check_empty(content: Any, where: str, role: str, *, final: bool) -> None:
    """Only a final assistant turn (a prefill) may be empty; a string is one text block, never blank."""
    if content not in ("", []):
        if isinstance(content, str) and not content.strip():
            raise invalid(f"{where}.content: text content blocks must contain non-whitespace text")
        return
    if role == "user":
        raise invalid(f"{where}.content: user messages must have non-empty content")
    if not final:
        raise invalid(
            f"{where}: all messages must have non-empty content except for the optional final assistant message"
        )


def _count_images(messages: list[Any]) -> int:
    """Image blocks in the conversation, those inside tool results included."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and isinstance(block.get("content"), list)
            ):
                count += sum(
                    1 for inner in block["content"] if isinstance(inner, dict) and inner.get("type") == "image"
                )
            elif isinstance(block, dict) and block.get("type") == "image":
                count += 1
    return count


def _check_blocks(content: Any, where: str, role: str, context: _Context) -> None:
    """One user or assistant message's content."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a valid string or list of content blocks")
    for index, block in enumerate(content):
        at = f"{where}.content.{index}"
        if not isinstance(block, dict):
            raise invalid(f"{at}: Input should be a valid dictionary")
        kind = block.get("type")
        if not isinstance(kind, str) or kind not in INPUT_BLOCK_TYPES:
            raise invalid(f"{at}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags")
        if context.version == "2026-10-21":
            if kind == "document" and role == "assistant":
                raise invalid(f"{at}: document blocks are not permitted in assistant messages")
            if kind == "text" and role == "user" and block.get("citations"):
                raise invalid(f"{at}.citations: citations are not permitted on text blocks in user messages")
        _check_block(block, at, context)


def _check_block(block: dict[str, Any], at: str, context: _Context) -> None:
    kind = block["type"]
    if kind == "text":
        _check_text(block, at)
    elif kind == "image":
        _check_image(block, at, context.max_image_side_px)
    elif kind == "document":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in DOCUMENT_SOURCES:
            raise invalid(f"{at}.source: Input should be a valid document source")
    elif kind == "thinking":
        _check_thinking(block, at, context.seed)
    elif kind == "redacted_thinking":
        if not isinstance(block.get("data"), str):
            raise invalid(f"{at}.data: Field required")
        raise invalid(f"{at}: Invalid `data` in `redacted_thinking` block")
    elif kind == "tool_result" and isinstance(block.get("content"), list):
        for index, inner in enumerate(block["content"]):
            if isinstance(inner, dict) and inner.get("type") in ("text", "image"):
                _check_block(inner, f"{at}.content.{index}", context)


def _check_text(block: dict[str, Any], at: str) -> None:
    if not isinstance(block.get("text"), str):
        raise invalid(f"{at}.text: Field required")
    if block["text"] == "":
        raise invalid(f"{at}.text: text content blocks must be non-empty")
    if not block["text"].strip():
        raise invalid(f"{at}.text: text content blocks must contain non-whitespace text")


def _check_thinking(block: dict[str, Any], at: str, seed: int) -> None:
    if not isinstance(block.get("thinking"), str):
        raise invalid(f"{at}.thinking: Field required")
    signature = block.get("signature")
    if not isinstance(signature, str):
        raise invalid(f"{at}.signature: Field required")
    if not thinking_signature_is_valid(seed, block["thinking"], signature):
        raise invalid(f"{at}: Invalid `signature` in `thinking` block")


def _check_image(block: dict[str, Any], at: str, max_side_px: int) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{at}.source: Field required")
    kind = source.get("type")
    if kind == "base64":
        _check_base64_image(source, f"{at}.image.source.base64", max_side_px)
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise invalid(f"{at}.image.source.url.url: Field required")
    elif kind == "file":
        if not isinstance(source.get("file_id"), str):
            raise invalid(f"{at}.image.source.file.file_id: Field required")
    else:
        raise invalid(f"{at}.source.type: Input tag '{kind}' found using 'type' does not match the expected tags")


def _check_base64_image(source: dict[str, Any], where: str, max_side_px: int) -> None:
    media_type = source.get("media_type")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise invalid(f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
    data = source.get("data")
    if not isinstance(data, str):
        raise invalid(f"{where}.data: Input should be a valid string")
    if len(data) > MAX_IMAGE_BASE64_BYTES:
        raise invalid(f"{where}: image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BASE64_BYTES} bytes")
    read = read_base64_image(data)
    if read is None:
        raise invalid(f"{where}.data: The image data is not valid base64")
    detected, size = read
    if detected is None:
        raise invalid(f"{where}.data: Image does not match the provided media type {media_type}")
    if detected != media_type:
        raise invalid(
            f"{where}: The image was specified using the {media_type} media type, "
            f"but the image appears to be a {detected} image"
        )
    if size is not None and max(size) > max_side_px:
        many = " for many-image requests" if max_side_px == MAX_MANY_IMAGE_SIDE_PX else ""
        raise invalid(
            f"{where}.data: At least one of the image dimensions exceed max allowed size{many}: {max_side_px} pixels"
        )
