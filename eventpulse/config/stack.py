"""The local stack's supervisor (`eventpulse up`): how crashed services are restarted."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class StackSettings(Section):
    """Restart policy of the services `eventpulse up` runs.

    A service that exits on its own is started again after ``restart_backoff_s``, doubling
    with each restart in the last ``restart_window_s`` up to ``restart_backoff_max_s``; after
    ``restart_limit`` restarts within that window the next exit stops the whole stack (a crash
    loop is reported, not hidden). ``restart_limit=0`` turns restarts off.

    With ``history`` on, `eventpulse up` also runs `eventpulse demo` once after the migrations: the
    ``history_days`` days before today filled with ``history_events_per_day`` synthetic events each
    (raw events, then the batch recompute, rollups and archive of those days); days already filled
    are skipped. ``make run`` turns it on.

    Environment: ``EVENTPULSE_STACK_RESTART_BACKOFF_S``, ``EVENTPULSE_STACK_RESTART_BACKOFF_MAX_S``,
    ``EVENTPULSE_STACK_RESTART_LIMIT``, ``EVENTPULSE_STACK_RESTART_WINDOW_S``, ``EVENTPULSE_STACK_HISTORY``,
    ``EVENTPULSE_STACK_HISTORY_DAYS``, ``EVENTPULSE_STACK_HISTORY_EVENTS_PER_DAY``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_STACK_")

    restart_backoff_s: float = Field(1.0, ge=0, description="Wait before the first restart of a crashed service (s).")
    restart_backoff_max_s: float = Field(30.0, ge=0, description="Longest wait between restarts (s).")
    restart_limit: int = Field(5, ge=0, description="Restarts of one service within the window before giving up.")
    restart_window_s: float = Field(300.0, gt=0, description="Window the restart limit counts over (s).")

    history: bool = Field(False, description="`eventpulse up` fills past days with demo history (`eventpulse demo`).")
    history_days: int = Field(
        7,
        ge=1,
        le=28,
        description="Days before today `eventpulse demo` fills (raw events older than 30 days are refused).",
    )
    history_events_per_day: int = Field(
        6_000, ge=1, le=2_000_000, description="Mean synthetic events per history day (weekends 70 %)."
    )
