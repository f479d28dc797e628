"""Configuration: one typed model (``model.Settings``) loaded once (``loader.load_settings``)."""

from sluicegate.config.loader import ConfigError, load_settings, load_settings_text
from sluicegate.config.model import Settings

__all__ = ["ConfigError", "Settings", "load_settings", "load_settings_text"]
