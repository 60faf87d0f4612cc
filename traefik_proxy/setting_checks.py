"""Settings as operators write them: checked, normalised, and old names kept.

Values that cannot work are refused when set, with a message naming the value
and the fix. ``public_url`` and ``traefik_api_url`` are normalised as
jupyterhub-traefik-proxy does (``http://127.0.0.1/`` → ``http://127.0.0.1:80/``).
Operators switching from that project keep their ``jupyterhub_config.py``: the
names it renamed and still accepts (``toml_static_config_file``; on
:class:`~traefik_proxy.fileprovider.TraefikTomlProxy`,
``toml_dynamic_config_file``) set our setting, with a ``DeprecationWarning``
naming it (and a log line, as JupyterHub does not show DeprecationWarnings).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from traitlets import HasTraits, TraitError, TraitType, Unicode, validate

from . import core


def refuse_negative(proposal: Any, fix: str = "0 or more") -> Any:
    """A validator's body for a count that cannot be negative: the value, or
    an error naming the setting, its value and ``fix`` (what to set instead)."""
    if proposal.value < 0:
        name = proposal.trait.name
        raise TraitError(f"{name} = {proposal.value} is negative; set c.TraefikProxy.{name} to {fix}")
    return proposal.value


def deprecated_alias(new: str, since: str) -> TraitType:
    """A traitlet kept for an old name: setting it sets ``new``, with a warning."""
    return Unicode(
        config=True, help=f"Deprecated (renamed in jupyterhub-traefik-proxy {since}): use {new}."
    ).tag(deprecated_for=new, deprecated_in=since)


class SettingChecks(HasTraits):
    """Mixin of :class:`~traefik_proxy.proxy.TraefikProxy`: validators, old names.

    A HasTraits, not a Configurable, so that it adds no config section of its
    own (``c.SettingChecks`` means nothing).
    """

    if TYPE_CHECKING:
        # For mypy only: what this mixin uses of TraefikProxy (JupyterHub's
        # Proxy's logger), which defines it. Nothing here exists at run time.
        log: logging.Logger

    toml_static_config_file = deprecated_alias("static_config_file", "1.0")

    def __init__(self, **kwargs):
        # observed before the config is loaded, which is when old names get set
        for name, trait in self.class_traits().items():
            if trait.metadata.get("deprecated_for"):
                self.observe(self._deprecated_name_set, name)
        super().__init__(**kwargs)

    def _deprecated_name_set(self, change) -> None:
        trait = self.class_traits()[change.name]
        cls = type(self).__name__
        new = trait.metadata["deprecated_for"]
        message = (
            f"{cls}.{change.name} is deprecated (jupyterhub-traefik-proxy "
            f"{trait.metadata['deprecated_in']}); set {cls}.{new} instead"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        self.log.warning(message)
        setattr(self, new, change.new)

    @validate("public_url", "traefik_api_url")
    def _normalize_url(self, proposal) -> str:
        name = proposal.trait.name
        # the public URL may leave the host out (JupyterHub's http://:8000: every
        # interface); the API's URL is where the Hub connects, so it needs one
        return core.normalize_url(name, proposal.value, need_host=name == "traefik_api_url")

    @validate("traefik_namespace")
    def _validate_namespace(self, proposal) -> str:
        value = proposal.value
        if not value or not all(c.isascii() and (c.isalnum() or c == "-") for c in value):
            raise ValueError(f"traefik_namespace {value!r} must be non-empty ASCII letters, digits and '-'")
        return value

    @validate("traefik_pin_host")
    def _validate_pin_host(self, proposal) -> str:
        return core.normalize_host(proposal.value) if proposal.value else ""


def deprecated_class(log, old: str, new: str) -> None:
    """Warn that a class was renamed (``old`` → ``new``, as proxy_class names it)."""
    message = f"{old} is deprecated (jupyterhub-traefik-proxy 1.0); use {new} instead"
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    log.warning(message)
