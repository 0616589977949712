"""The one base class every settings section derives from.

Each section reads its own environment variables (``EVENTPULSE_<SECTION>_<FIELD>``);
an explicit constructor argument always beats the environment. Sections are frozen:
settings are read once, at start-up, by whoever builds the clients, never at import time.
"""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Section(BaseSettings):
    """Base for a frozen settings section; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None)
