"""Hugging Face safetensors -> GGUF with llama.cpp's own ``convert_hf_to_gguf.py``.

The converter, its ``conversion/`` package (one module per architecture family)
and its ``gguf-py`` come from the llama.cpp of the installed llama-cpp-python
(see :mod:`llama_cpp_source`), so converter and quantizer agree on every tensor
name and metadata key. It runs as a subprocess of the job's child process with
the vendored gguf-py first on ``PYTHONPATH`` (it needs its own, not the pinned
``gguf`` package the rest of Quantplan uses); its output goes to the job log and
a failure becomes a BackendError quoting its last words.

The converter asks transformers for tokenizers with ``trust_remote_code=True``
in places; a small bootstrap forces it back to False before the converter runs,
so a model folder's own Python code is never executed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quantjobs.backends.base import BackendError, LogFn, ProgressFn

__all__ = [
    "ConvertResult",
    "byte_fallback_is_void",
    "convert_hf_to_gguf",
    "without_void_byte_fallback",
]

# Runs in the converter's interpreter: disable remote code, then run the script.
_BOOTSTRAP = """
import runpy, sys
import transformers

def _local_only(cls):
    original = cls.from_pretrained.__func__
    def from_pretrained(c, *args, **kwargs):
        kwargs["trust_remote_code"] = False
        return original(c, *args, **kwargs)
    cls.from_pretrained = classmethod(from_pretrained)

for _name in ("AutoConfig", "AutoTokenizer", "AutoProcessor", "AutoModel",
              "AutoModelForCausalLM", "AutoImageProcessor"):
    if hasattr(transformers, _name):
        _local_only(getattr(transformers, _name))
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""

_OUT_TYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}
_WRITING = re.compile(r"Writing:\s+(\d+)%")
_ARCH_LINE = re.compile(r"Model architecture: (\S+)")
_LOG_PREFIX = re.compile(r"^(?:INFO|WARNING|ERROR|DEBUG):[\w.-]+:")
_MAX_LOG_LINES = 400  # of the converter's output into the job log


@dataclass(frozen=True)
class ConvertResult:
    """What the conversion wrote."""

    path: Path
    architecture: str  # the Hugging Face class the converter picked
    byte_fallback_fixed: bool  # tokenizer.json's void byte_fallback was dropped


def byte_fallback_is_void(tokenizer: dict[str, object]) -> bool:
    """True for a BPE tokenizer.json asking for byte fallback it cannot do.

    Byte fallback spells unknown bytes as ``<0x00>``..``<0xFF>`` tokens; a
    byte-level vocabulary (``Ġ``-style, like the sample exported by
    transformers) has none, so the flag changes nothing in transformers. To
    llama.cpp's converter it means "SentencePiece-style vocabulary", which
    llama.cpp then aborts on (std::out_of_range) when it loads the file.
    """
    model = tokenizer.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        return False
    if not model.get("byte_fallback"):
        return False
    vocab = model.get("vocab")
    return isinstance(vocab, dict) and "<0x00>" not in vocab


def without_void_byte_fallback(model_dir: Path, scratch: Path, log: LogFn) -> Path:
    """``model_dir``, or a copy in ``scratch`` whose tokenizer.json is fixed.

    The copy links the weights (no bytes duplicated) and rewrites only
    tokenizer.json with ``byte_fallback: false``.
    """
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return model_dir
    try:
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendError(f"tokenizer.json cannot be read: {exc}") from None
    if not isinstance(tokenizer, dict) or not byte_fallback_is_void(tokenizer):
        return model_dir
    log(
        "tokenizer.json sets byte_fallback but its vocabulary has no byte tokens; "
        "converting a copy with byte_fallback false (llama.cpp cannot load the other)"
    )
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.is_file() and item.name != "tokenizer.json":
            os.symlink(item.resolve(), scratch / item.name)
    tokenizer["model"]["byte_fallback"] = False
    (scratch / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return scratch


def _failure(lines: list[str], returncode: int) -> BackendError:
    """The converter's own reason, without log prefixes or a traceback."""
    errors = [
        _LOG_PREFIX.sub("", ln).strip() for ln in lines if ln.startswith("ERROR:")
    ]
    last = [ln.strip() for ln in lines if ln.strip()]
    if errors:
        reason = errors[-1]
    elif last:
        reason = last[-1]
        # "ModuleNotFoundError: ..." / "NotImplementedError: ..." -> the message.
        reason = re.sub(r"^[\w.]*(Error|Exception): ", "", reason)
    else:
        reason = f"it exited with status {returncode} and said nothing"
    return BackendError(f"llama.cpp's converter could not convert this model: {reason}")


def _converter_env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(src / "gguf-py"), str(src)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("NO_LOCAL_GGUF", None)
    # Nothing is fetched from the network: the folder is all there is.
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def convert_hf_to_gguf(
    model_dir: Path,
    out: Path,
    *,
    out_type: str = "F16",
    progress: ProgressFn,
    log: LogFn,
    timeout_s: float | None = None,
) -> ConvertResult:
    """Convert the Hugging Face folder ``model_dir`` into the GGUF file ``out``.

    ``out`` is written under a temporary name next to it and renamed when the
    converter succeeded; on failure nothing is left at ``out``.
    """
    from quantjobs.backends.gguf.llama_cpp_source import ensure_llama_cpp_source

    if out_type not in _OUT_TYPES:
        raise BackendError(f"Unknown conversion type {out_type}; use F16, BF16 or F32.")
    progress(0.0, "convert")
    src = ensure_llama_cpp_source(log)
    scratch = out.parent / f".{out.name}.source"
    source = without_void_byte_fallback(Path(model_dir), scratch, log)
    partial = out.parent / f".{out.name}.converting"
    cmd = [
        sys.executable, "-c", _BOOTSTRAP, str(src / "convert_hf_to_gguf.py"),
        str(source), "--outtype", _OUT_TYPES[out_type], "--outfile", str(partial),
    ]  # fmt: skip
    log(f"converting with llama.cpp's convert_hf_to_gguf.py ({src.name})")
    lines: list[str] = []
    logged = 0
    architecture = ""
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_converter_env(src),
            cwd=src,
        )
        assert proc.stdout is not None
        pending = b""
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            # tqdm redraws its bar with \r; treat it as a line end too.
            *complete, pending = re.split(rb"[\r\n]", pending)
            for raw in complete:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if not line:
                    continue
                lines.append(line)
                del lines[:-200]
                match = _WRITING.search(line)
                if match:
                    progress(int(match.group(1)) / 100, "convert")
                    continue
                arch = _ARCH_LINE.search(line)
                if arch:
                    architecture = arch.group(1)
                if logged < _MAX_LOG_LINES:
                    log(f"convert: {_LOG_PREFIX.sub('', line)}")
                    logged += 1
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                proc.kill()
                raise BackendError(
                    f"llama.cpp's converter took over {timeout_s:.0f} s; stopped."
                )
        if pending.strip():
            lines.append(pending.decode("utf-8", errors="replace").rstrip())
        returncode = proc.wait()
        if returncode != 0 or not partial.is_file():
            raise _failure(lines, returncode)
        os.replace(partial, out)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        partial.unlink(missing_ok=True)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    log(
        f"converted {architecture or 'the model'} to {out.name} "
        f"({out.stat().st_size} bytes) in {time.monotonic() - started:.1f} s"
    )
    progress(1.0, "convert")
    return ConvertResult(
        path=out, architecture=architecture, byte_fallback_fixed=source != model_dir
    )
