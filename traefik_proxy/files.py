"""Config files: TOML or YAML by extension, written atomically and privately."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

from .core.serialize import Memo, to_toml, to_yaml


def config_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise ValueError(f"config file {str(path)!r} must end in .toml, .yaml or .yml, which decides its format")


def dump_config(config: dict[str, Any], path: Path, memo: Memo | None = None) -> bytes:
    """Serialize a config for ``path``'s format (fast writers from the core).

    Pass the same ``memo`` for successive versions of one document to reuse
    the text of unchanged subtrees.
    """
    if config_format(path) == "toml":
        return to_toml(config, memo).encode()
    return to_yaml(config, memo).encode()


def load_config(path: Path) -> dict[str, Any]:
    """Parse a config file; a clear ValueError naming the file if it is not valid."""
    data = path.read_bytes()
    try:
        config = parse_config(data, config_format(path))
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(
            f"dynamic config file {str(path)!r} is not valid {config_format(path).upper()}: {e}. "
            "Fix or move it away; it was left untouched."
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"dynamic config file {str(path)!r} holds a {type(config).__name__}, not a mapping")
    return config


TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


def parse_config(data: bytes, fmt: str) -> Any:
    """Parse TOML or YAML text. YAML we wrote is JSON: read it as JSON first,
    which is exact (YAML 1.2 numbers such as 1e-05, as Traefik reads them)
    and ~30x faster; anything else goes through the YAML parser."""
    if fmt == "toml":
        return tomllib.loads(data.decode())
    try:
        return json.loads(data)
    except ValueError:
        return yaml.load(data, Loader=_YamlLoader) or {}


def atomic_write(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content``: readers see the old file or the new, whole.

    Written to a temporary file in the same directory (mode 0600 from the
    start), fsynced, then renamed over the target.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# C-accelerated YAML parsing when libyaml is there (files are only read at
# start and after someone else edits them)
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
