"""Config files: TOML or YAML by extension, written atomically and privately."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import yaml


def config_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise ValueError(
        f"config file {str(path)!r} must end in .toml, .yaml or .yml, which decides its format"
    )


def dump_config(config: dict[str, Any], path: Path) -> bytes:
    """Serialize a config for ``path``'s format."""
    if config_format(path) == "toml":
        return tomli_w.dumps(config).encode()
    return yaml.dump(config, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True).encode()


def load_config(path: Path) -> dict[str, Any]:
    """Parse a config file; a clear ValueError naming the file if it is not valid."""
    data = path.read_bytes()
    try:
        if config_format(path) == "toml":
            config = tomllib.loads(data.decode())
        else:
            config = yaml.load(data, Loader=_YamlLoader) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(
            f"dynamic config file {str(path)!r} is not valid {config_format(path).upper()}: {e}. "
            "Fix or move it away; it was left untouched."
        ) from None
    if not isinstance(config, dict):
        raise ValueError(
            f"dynamic config file {str(path)!r} holds a {type(config).__name__}, not a mapping"
        )
    return config


TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


def atomic_write(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content``: readers see the old file or the new, whole.

    Written to a temporary file in the same directory (mode 0600 from the
    start), fsynced, then renamed over the target.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=directory
    )
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


# C-accelerated YAML when libyaml is there: dumping 10k routes in pure Python
# costs seconds.
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
