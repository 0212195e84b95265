"""inspect_gguf refuses hostile GGUF files with a reason, in a child process."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.gguf_inspect import inspect_gguf, template_warnings
from quantjobs.samples import sample_path

U32, U64, STR, ARR, F32_TYPE = 4, 10, 8, 9, 0
HUGE = 1 << 63


def gstr(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv_str(key: str, value: str) -> bytes:
    return gstr(key) + struct.pack("<I", STR) + gstr(value)


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<I", U32) + struct.pack("<I", value)


def tensor_info(name: str, dims: list[int], ggml_type: int, offset: int) -> bytes:
    out = gstr(name) + struct.pack("<I", len(dims))
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ggml_type, offset)


def build(
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    kvs: list[bytes] | None = None,
    tensors: list[bytes] | None = None,
    tensor_count: int | None = None,
    kv_count: int | None = None,
    data: bytes = b"\0" * 256,
    alignment: int = 32,
) -> bytes:
    """A small GGUF: a llama architecture key and one 32x2 F32 tensor, by default."""
    kvs = [kv_str("general.architecture", "llama")] if kvs is None else kvs
    tensors = (
        [tensor_info("token_embd.weight", [32, 2], F32_TYPE, 0)]
        if tensors is None
        else tensors
    )
    header = magic + struct.pack("<I", version)
    header += struct.pack("<Q", len(tensors) if tensor_count is None else tensor_count)
    header += struct.pack("<Q", len(kvs) if kv_count is None else kv_count)
    header += b"".join(kvs) + b"".join(tensors)
    header += b"\0" * (-len(header) % alignment)
    return header + data


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes], Path]:
    def _write(content: bytes) -> Path:
        path = tmp_path / "model.gguf"
        path.write_bytes(content)
        return path

    return _write


def refused(path: Path, **kwargs: object) -> str:
    with pytest.raises(BackendError) as excinfo:
        inspect_gguf(path, timeout_s=20, **kwargs)  # type: ignore[arg-type]
    return str(excinfo.value)


def test_it_accepts_the_minimal_well_formed_file(
    write: Callable[[bytes], Path],
) -> None:
    info = inspect_gguf(write(build()))
    assert info.architecture == "llama"
    assert info.tensor_count == 1
    assert info.types_histogram == {"F32": 1}
    assert info.parameter_count == 64


HOSTILE: dict[str, tuple[bytes, str]] = {
    "truncated header": (build()[:100], "truncated"),
    "truncated tensor data": (build()[:-200], "past the end"),
    "bad magic": (build(magic=b"GGML"), "not a GGUF file"),
    "version 99": (build(version=99), "version 99 is not supported"),
    "big-endian": (build(version=3 << 24), "big-endian"),
    "tensor count 2^63": (build(tensor_count=HUGE), "tensors, which cannot fit"),
    "kv count huge": (build(kv_count=1 << 40), "metadata entries, which cannot fit"),
    "string length 2^63": (
        build(
            kvs=[
                gstr("general.architecture") + struct.pack("<I", STR) + gstr("x", HUGE)
            ]
        ),
        "claims a length of",
    ),
    "key length 2^63": (build(kvs=[gstr("k", HUGE)]), "claims a length of"),
    "array length 2^63": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARR, STR, HUGE),
            ]
        ),
        "claims 9,223,372,036,854,775,808 items",
    ),
    "nested array": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                gstr("x")
                + struct.pack("<IIQ", ARR, ARR, 1)
                + struct.pack("<IQ", U32, 0),
            ]
        ),
        "nests arrays",
    ),
    "unknown value type": (
        build(kvs=[gstr("general.architecture") + struct.pack("<I", 77)]),
        "unknown value type 77",
    ),
    "duplicate key": (
        build(kvs=[kv_str("general.architecture", "llama")] * 2),
        "appears twice",
    ),
    "alignment 3": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                kv_u32("general.alignment", 3),
            ]
        ),
        "general.alignment is 3",
    ),
    "alignment 0": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                kv_u32("general.alignment", 0),
            ]
        ),
        "general.alignment is 0",
    ),
    "dims product overflow": (
        build(tensors=[tensor_info("t", [1 << 32, 1 << 32], F32_TYPE, 0)]),
        "product overflows",
    ),
    "dimension above int64": (
        build(tensors=[tensor_info("t", [HUGE + 5], F32_TYPE, 0)]),
        "has a dimension of",
    ),
    "five dimensions": (
        build(tensors=[tensor_info("t", [1, 1, 1, 1, 1], F32_TYPE, 0)]),
        "5 dimensions",
    ),
    "offset past end": (
        build(tensors=[tensor_info("t", [32, 2], F32_TYPE, 1 << 20)]),
        "past the end",
    ),
    "misaligned offset": (
        build(tensors=[tensor_info("t", [8], F32_TYPE, 4)]),
        "not a multiple of the alignment",
    ),
    "overlapping tensors": (
        build(
            tensors=[
                tensor_info("a", [32], F32_TYPE, 0),
                tensor_info("b", [32], F32_TYPE, 64),
            ]
        ),
        "overlap",
    ),
    "unknown ggml type": (
        build(tensors=[tensor_info("t", [32, 2], 99, 0)]),
        "unknown ggml type 99",
    ),
    "row not a multiple of the block": (
        build(tensors=[tensor_info("t", [33, 2], 2, 0)]),  # Q4_0, blocks of 32
        "not a multiple of Q4_0's block size 32",
    ),
    "tensor name too long": (
        build(tensors=[tensor_info("x" * 200, [32, 2], F32_TYPE, 0)]),
        "claims a length of 200",
    ),
    "duplicate tensor": (
        build(
            tensors=[
                tensor_info("t", [8], F32_TYPE, 0),
                tensor_info("t", [8], F32_TYPE, 32),
            ]
        ),
        "appears twice",
    ),
    "no tensors": (build(tensors=[], data=b""), "no tensors"),
    "no architecture": (
        build(kvs=[kv_u32("general.file_type", 1)]),
        "general.architecture",
    ),
    "chat template with code": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                kv_str(
                    "tokenizer.chat_template",
                    "{{ ''.__class__.__mro__[1].__subclasses__() }}"
                    "{% for m in messages %}{{ m.content }}{% endfor %}",
                ),
            ]
        ),
        "chat template",
    ),
    "chat template importing": (
        build(
            kvs=[
                kv_str("general.architecture", "llama"),
                kv_str(
                    "tokenizer.chat_template",
                    "{% import 'os' as os %}{{ os.system('id') }}",
                ),
            ]
        ),
        "an import",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_it_refuses_a_hostile_file_with_a_reason(
    case: str, write: Callable[[bytes], Path]
) -> None:
    content, reason = HOSTILE[case]
    pid = os.getpid()
    message = refused(write(content))
    assert reason in message, message
    assert message.startswith("model.gguf was refused: ")
    assert os.getpid() == pid  # the parsing happened elsewhere; we are still here


def _validator_runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The validating child processes started from now on (the real ones)."""
    from quantjobs.backends import gguf_inspect

    runs: list[Path] = []
    real = gguf_inspect._validate_in_child

    def counting(path: Path, **limits: Any) -> Any:
        runs.append(path)
        return real(path, **limits)

    monkeypatch.setattr(gguf_inspect, "_validate_in_child", counting)
    return runs


def test_an_unchanged_file_is_validated_once_unless_asked_for_more(
    write: Callable[[bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _validator_runs(monkeypatch)
    path = write(build())
    first = inspect_gguf(path, timeout_s=120)
    assert inspect_gguf(path, timeout_s=300) == first  # no stricter: answered
    assert len(runs) == 1
    # Less memory than it passed with: validated again (and then remembered).
    assert inspect_gguf(path, timeout_s=300, max_memory_bytes=1 << 30) == first
    inspect_gguf(path, timeout_s=300, max_memory_bytes=1 << 30)
    assert len(runs) == 2


def test_a_file_changed_since_it_was_validated_is_validated_again(
    write: Callable[[bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _validator_runs(monkeypatch)
    path = write(build())
    inspect_gguf(path, timeout_s=120)
    good = path.read_bytes()
    path.write_bytes(good[:4] + struct.pack("<I", 99) + good[8:])  # same size
    with pytest.raises(BackendError, match="version 99 is not supported"):
        inspect_gguf(path, timeout_s=300)
    assert len(runs) == 2


def test_llama_cpps_check_is_run_once_and_not_reported_unasked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = _validator_runs(monkeypatch)
    path = sample_path("smollm2-135m-instruct-q4_1")
    checked = inspect_gguf(path, timeout_s=300, llama_check=True)
    plain = inspect_gguf(path, timeout_s=300)
    again = inspect_gguf(path, timeout_s=300, llama_check=True)
    assert checked.llama_check is not None and again == checked
    assert plain.llama_check is None and plain.tensor_count == checked.tensor_count
    assert len(runs) <= 1  # an earlier test in this process may have checked it


def test_it_refuses_a_file_that_is_not_there(tmp_path: Path) -> None:
    assert "Cannot read" in refused(tmp_path / "missing.gguf")


def test_it_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.gguf").mkdir()
    assert "not a regular file" in refused(tmp_path / "dir.gguf")


def test_it_stops_a_validation_that_takes_too_long(
    write: Callable[[bytes], Path],
) -> None:
    path = write(build())
    with pytest.raises(BackendError, match="took longer than"):
        inspect_gguf(path, timeout_s=0.001)


def test_it_refuses_when_the_memory_limit_is_too_small() -> None:
    message = refused(
        sample_path("smollm2-135m-instruct-q4_1"), max_memory_bytes=8 << 20
    )
    assert "refused" in message and ("memory" in message or "validator" in message)


def test_it_accepts_the_real_sample_and_reports_it() -> None:
    info = inspect_gguf(sample_path("smollm2-135m-instruct-q4_1"))
    assert info.architecture == "llama"
    assert info.tensor_count == 272
    assert info.file_type == 3 and info.file_type_name == "Q4_1"
    assert info.types_histogram == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert info.vocab_size == 49152
    assert info.context_length == 8192
    assert info.parameter_count == 134_515_008
    assert info.metadata["tokenizer.ggml.tokens"] == "<array of 49,152 STRING>"
    assert info.metadata["llama.attention.head_count"] == 9
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.chat_template_warnings == ()
    assert info.tensor_types["token_embd.weight"] == "Q8_0"


def test_it_can_also_ask_llama_cpp_in_the_child() -> None:
    info = inspect_gguf(sample_path("smollm2-135m-instruct-q4_1"), llama_check=True)
    assert info.llama_check is not None and info.llama_check["n_vocab"] == 49152


def test_real_chat_templates_raise_no_warning() -> None:
    llama3 = (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
        "{% endif %}{{ raise_exception('x') if false }}"
    )
    assert template_warnings(llama3) == []
    # Prose outside Jinja blocks is not code, even when it says "import".
    assert template_warnings("Please import {{ messages[0]['content'] }}") == []


def test_template_warnings_name_what_they_found() -> None:
    found = template_warnings("{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    assert any("__globals__" in f for f in found)
    assert any("cycler" in f for f in found)
