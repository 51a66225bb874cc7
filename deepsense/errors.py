"""Exception families shared by every package (no heavy imports here)."""

from __future__ import annotations


class DataFormatError(ValueError):
    """Input data that does not follow its format; the message names file, line and field."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.line = line
        self.field = field


class ConfigError(ValueError):
    """An unknown, ill-typed or out-of-range configuration key or command-line value."""


class MissingExtraError(ImportError):
    """A command needs an optional dependency group (`pip install .[extra]`)."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this command needs '{module}', which is not installed; "
            f"install the '{extra}' extra: pip install 'deepsense-iot[{extra}]' "
            f"(or, from a checkout, pip install -e '.[{extra}]')")
        self.extra = extra


def require(module: str, extra: str):
    """Import `module`, or raise MissingExtraError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc
