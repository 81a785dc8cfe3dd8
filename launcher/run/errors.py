"""Errors of getting and loading weights and of chat sessions, with structured fields; imports only
registry.errors."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import EXIT_USAGE, BerthError


class LoadError(BerthError, RuntimeError):
    """Base class of the errors `berth launch` raises on purpose while fetching, loading or running a model;
    `hint` is the next thing to try, in words (it may name a command or an option)."""

    def __init__(self, model_id: str, message: str, hint: str = "") -> None:
        self.model_id = model_id
        super().__init__(message, hint)


class UnsafeWeightsError(LoadError):
    """The only weights are pickle files (.bin/.pt), which run code when loaded, and --allow-pickle was not given."""

    exit_code = EXIT_USAGE

    def __init__(self, model_id: str, files: Sequence[str]) -> None:
        self.files = list(files)
        shown = ", ".join(self.files[:3]) + (
            f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
        )
        super().__init__(
            model_id,
            f"{model_id} publishes its weights only as pickle files ({shown}); unpickling can run arbitrary "
            f"code, so Berth does not load them by default",
            hint="if you trust the publisher, run again with --allow-pickle",
        )


class RemoteCodeRefusedError(LoadError):
    """The model needs Python code from its repository (trust_remote_code) and --trust-remote-code was not given."""

    exit_code = EXIT_USAGE

    def __init__(self, model_id: str) -> None:
        super().__init__(
            model_id,
            f"{model_id} needs code from its own repository to load (trust_remote_code); Berth never runs "
            f"that code unless asked for this launch",
            hint="read the repository's .py files, then run again with --trust-remote-code",
        )


class UnsafePickleError(LoadError):
    """A pickle weights file holds more than tensors: PyTorch's safe loader (weights_only) refused it, so nothing
    in it ran. `detail` is the first line of PyTorch's reason (what the file asked for)."""

    exit_code = EXIT_USAGE

    def __init__(self, model_id: str, files: Sequence[str], detail: str) -> None:
        self.files = list(files)
        self.detail = detail
        shown = ", ".join(self.files[:3]) or "its pickle weights file"
        super().__init__(
            model_id,
            f"{shown} of {model_id} is not plain weights: unpickling it would run code or build objects other "
            f"than tensors ({detail}); PyTorch's safe loader refused it, so nothing in it ran",
            hint="do not use this file; get the model as safetensors from a publisher you trust",
        )


class GatedModelError(LoadError):
    """The Hub gates the repository: the user must accept its terms and be logged in."""

    def __init__(self, model_id: str, logged_in: bool) -> None:
        self.logged_in = logged_in
        page = f"https://huggingface.co/{model_id}"
        if logged_in:
            message = f"{model_id} is gated and your Hugging Face token has no access to it yet"
            hint = f"accept the terms at {page} with the account of your token, then run again"
        else:
            message = f"{model_id} is gated on the Hugging Face Hub and you are not logged in"
            hint = f"accept the terms at {page}, then log in with `hf auth login` (or set HF_TOKEN) and run again"
        super().__init__(model_id, message, hint)


class DownloadError(LoadError):
    """The files could not be fetched: offline without a cached copy, repository or revision missing, network."""

    def __init__(self, model_id: str, message: str, hint: str = "", offline: bool = False) -> None:
        self.offline = offline
        super().__init__(model_id, message, hint)


class OutOfMemoryError(LoadError):
    """Every rung of the ladder that was tried ran out of memory (or nothing else fits after one did)."""

    def __init__(self, model_id: str, attempts: Sequence[str]) -> None:
        self.attempts = list(attempts)
        super().__init__(
            model_id,
            f"{model_id} ran out of memory while loading: " + "; ".join(self.attempts),
            hint="free memory (close other programs or GPU jobs), try a shorter --context, or --quant nf4 on a GPU",
        )


class SessionError(BerthError):
    """Base class of errors a session raises on purpose."""

    exit_code = EXIT_USAGE


class SessionBusyError(SessionError):
    """A reply is still being generated; stop it or wait before sending the next message."""


class SessionInputError(SessionError, ValueError):
    """The message cannot be used for this kind of model (a fill-mask prompt without [MASK], an empty prompt)."""


class UnknownChatError(BerthError, KeyError):
    """A chat id that is not in the history store."""

    exit_code = EXIT_USAGE

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        super().__init__(f"there is no chat {chat_id}", hint="See the chats with `berth history list`.")

    def __str__(self) -> str:
        return self.message


class MemoryBudgetExceeded(MemoryError):
    """Raised inside loading when the process passes a memory cap the user set; a MemoryError on purpose, so
    loading treats it as running out of memory (it never reaches the user as itself)."""

    def __init__(self, device: str, used_bytes: int, limit_bytes: int) -> None:
        self.device = device
        self.used_bytes = used_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"{device}: {used_bytes:,} bytes used, over the {limit_bytes:,}-byte cap")


class LlamaCppMissingError(LoadError):
    """The plan runs a GGUF file with llama.cpp, and llama-cpp-python (the `gguf` extra) is not installed."""

    def __init__(self, model_id: str, file_name: str) -> None:
        super().__init__(
            model_id,
            f"{file_name} is planned to run quantized with llama.cpp, and llama-cpp-python is not installed "
            "here; it is Berth's optional `gguf` extra (it builds llama.cpp from source, which takes minutes "
            "on a small machine)",
            hint="pip install 'berth-llm[gguf]' and run again, or load the file dequantized through transformers "
            "with --runtime transformers (several times the memory, and slower)",
        )


class LlamaCppLoadError(LoadError):
    """llama.cpp refused the file or could not make its context (a corrupt file, an unknown architecture,
    not enough memory for the KV cache)."""
