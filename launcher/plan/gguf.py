"""A GGUF file's weights as the llama.cpp planner sees them, and which quant file of a Hub repository to take.

Pure: imports registry only. `weights_from_header` sums a local file's tensor table per decoder layer (what
`n_gpu_layers` moves), the input embeddings (llama.cpp keeps them on the CPU) and the output head;
`weights_from_size` estimates the same from a file size alone (a Hub listing), spreading the bytes like the
model's parameters. `pick_quant_file` takes a repository's [(filename, size_bytes)] and a memory budget and
returns the largest quant file that fits; split files (`-00001-of-00003.gguf`) count as one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from registry.gguf_file import GgufHeader
from registry.schema import ModelCard

#: Quantization names as they appear in GGUF file names, longest first so Q4_K_M wins over Q4_K.
_QUANT_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8]_[0-9A-Z](?:_[A-Z]{1,2})?|IQ[1-4]_[A-Z]{1,3}|BF16|F16|F32|MXFP4(?:_MOE)?|TQ[12]_0)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
#: Files in GGUF repositories that are not a language model's weights.
_NOT_WEIGHTS = ("mmproj", "imatrix", "vocab", "draft")
_OUTPUT = ("output.weight", "output.bias", "output_norm.weight", "output_norm.bias")
_LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class GgufWeights:
    """Bytes of a GGUF file's tensors by where llama.cpp can put them."""

    file_name: str
    quantization: str
    """Q4_K_M, Q8_0, F16 … (the file's general.file_type)."""
    layer_bytes: tuple[int, ...]
    """Each decoder layer's tensors (blk.N.*): what n_gpu_layers moves to a GPU, last layers first."""
    input_bytes: int
    """Token embeddings and other tensors outside the layers and the head: always in RAM."""
    output_bytes: int
    """The output norm and head (output*.weight/bias) as stored."""
    tied_output: bool
    """No output.weight: the head reuses the token embeddings (llama.cpp copies them to a GPU holding the head)."""
    embedding_bytes: int
    """The token embeddings (part of input_bytes)."""
    file_bytes: int
    estimated: bool = False
    """Made from a file size, not a tensor table."""

    @property
    def tensor_bytes(self) -> int:
        """All tensor data in the file."""
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    @property
    def head_bytes(self) -> int:
        """What the output layer occupies on a GPU it is offloaded to (tied embeddings copied there)."""
        return self.output_bytes + (self.embedding_bytes if self.tied_output else 0)

    @property
    def n_layers(self) -> int:
        """Decoder layers in the file."""
        return len(self.layer_bytes)


def weights_from_header(header: GgufHeader, file_name: str) -> GgufWeights:
    """Sum a file's tensors per layer, input and output."""
    layers: dict[int, int] = {}
    input_bytes = output_bytes = 0
    names = {t.name for t in header.tensors}
    embeddings = 0
    for tensor in header.tensors:
        match = _LAYER.match(tensor.name)
        if match:
            index = int(match.group(1))
            layers[index] = layers.get(index, 0) + tensor.n_bytes
        elif tensor.name in _OUTPUT:
            output_bytes += tensor.n_bytes
        else:
            input_bytes += tensor.n_bytes
            if tensor.name == "token_embd.weight":
                embeddings = tensor.n_bytes
    count = max(layers) + 1 if layers else 0
    return GgufWeights(
        file_name=file_name,
        quantization=header.quantization,
        layer_bytes=tuple(layers.get(i, 0) for i in range(count)),
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        tied_output="output.weight" not in names,
        embedding_bytes=embeddings,
        file_bytes=header.file_bytes,
    )


def quantization_in_name(file_name: str) -> str | None:
    """The quantization a GGUF file name states (Q4_K_M, IQ3_XS, F16 …), upper-cased; None when it states none."""
    found = _QUANT_IN_NAME.findall(file_name)
    return found[-1].upper() if found else None


def weights_from_size(card: ModelCard, file_name: str, size_bytes: int) -> GgufWeights:
    """An estimate from a file's size: bytes spread like the parameters (embeddings, layers, head)."""
    arch = card.architecture
    params = max(card.params, 1)
    embedding_params = arch.vocab_size * arch.hidden_size
    tied = arch.tie_word_embeddings
    head_params = 0 if tied else embedding_params
    per_param = size_bytes / params
    input_bytes = int(embedding_params * per_param)
    head_bytes = int(head_params * per_param)
    layers_total = max(size_bytes - input_bytes - head_bytes, 0)
    n = max(arch.num_layers, 1)
    layer_bytes = tuple(layers_total // n for _ in range(n))
    return GgufWeights(
        file_name=file_name,
        quantization=quantization_in_name(file_name) or "unknown",
        layer_bytes=layer_bytes,
        input_bytes=input_bytes,
        output_bytes=head_bytes,
        tied_output=tied,
        embedding_bytes=input_bytes,
        file_bytes=size_bytes,
        estimated=True,
    )


@dataclass(frozen=True)
class QuantFile:
    """One quantization offered by a GGUF repository: its first file, all its parts' bytes, its name."""

    file_name: str
    size_bytes: int
    quantization: str
    parts: int = 1


def part_names(file_name: str) -> list[str]:
    """Every part of a split GGUF file named by its first (NAME-00001-of-00003.gguf: parts 1 to 3), or the file."""
    split = _SPLIT.search(file_name)
    if split is None:
        return [file_name]
    total, digits = int(split.group(2)), len(split.group(1))
    prefix, suffix = file_name[: split.start()], file_name[split.end() - len(".gguf") :]
    return [f"{prefix}-{n:0{digits}d}-of-{split.group(2)}{suffix}" for n in range(1, total + 1)]


def quant_files(files: Sequence[tuple[str, int]]) -> list[QuantFile]:
    """The model weight files of a repository listing, split parts joined, largest first."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, size in files:
        base = name.rsplit("/", 1)[-1].lower()
        if not base.endswith(".gguf") or any(word in base for word in _NOT_WEIGHTS):
            continue
        split = _SPLIT.search(name)
        key = name[: split.start()] if split else name
        groups.setdefault(key, []).append((name, size))
    result = []
    for parts in groups.values():
        parts.sort()
        first = parts[0][0]
        quant = quantization_in_name(first) or "unknown"
        result.append(QuantFile(first, sum(size for _, size in parts), quant, len(parts)))
    result.sort(key=lambda q: (-q.size_bytes, q.file_name))
    return result


def pick_quant_file(
    files: Sequence[tuple[str, int]], budget_bytes: int, overhead_bytes: int = 0
) -> QuantFile | None:
    """The largest quant file whose bytes plus `overhead_bytes` (KV cache, buffers) fit in `budget_bytes`;
    None when even the smallest does not."""
    for candidate in quant_files(files):
        if candidate.size_bytes + overhead_bytes <= budget_bytes:
            return candidate
    return None
