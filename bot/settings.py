"""Settings from the environment (pydantic-settings). The YAML config holds the rest."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    slack_bot_token: str = ""  # empty: run against the embedded local Slack stand-in
    slack_signing_secret: str = ""
    slack_app_token: str = ""  # set: Socket Mode instead of HTTP
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = ""  # empty: a SQLite file in the working directory
    prometheus_url: str = ""  # overrides `prometheus.url` in the config
    rollout_config: str = ""
    alertmanager_token: str = ""  # overrides `alertmanager.bearer_token` in the config
    replica_id: str = ""  # this process among replicas on one database; empty: hostname-pid
    host: str = "127.0.0.1"
    port: int = 3000

    @property
    def embedded_slack(self) -> bool:
        return not self.slack_bot_token

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def problem(self) -> str | None:
        """Why the bot cannot reach Slack with these settings, or None when it can."""
        if self.slack_bot_token and not self.socket_mode and not self.slack_signing_secret:
            return (
                "SLACK_SIGNING_SECRET is not set: over HTTP the bot checks every request "
                "from Slack with it (Basic Information → App Credentials in the Slack app's "
                "settings). Or set SLACK_APP_TOKEN for Socket Mode, which needs no secret."
            )
        return None
