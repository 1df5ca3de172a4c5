"""YAML parsing with PyYAML's C loader (libyaml) when it is built in.

Same documents, same Python values as ``yaml.safe_load`` (both are PyYAML's safe constructor);
libyaml's scanner/parser is about 10x faster, which matters where a step parses one small file
per episode of a growing partition (recording ``metadata.yaml``: incremental conversion, issue 18).
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str | bytes) -> Any:
    """Parse one YAML document like ``yaml.safe_load``.

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
