"""API settings that the shared `firetower.settings.Settings` does not carry.

Read from the same FIRETOWER_* environment. Secrets stay in the shared root (`secret_key`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIRETOWER_", extra="ignore")

    # Bearer tokens are short-lived; the console logs in again when one expires.
    api_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Mosquitto files the API rewrites when device credentials change (None: not managed).
    mqtt_password_file: Path | None = None
    mqtt_acl_file: Path | None = None
    # Group given read access to both files (the broker's user group, e.g. "mosquitto").
    mqtt_files_group: str | None = None
    # PID file of the broker to SIGHUP after a rewrite (None: the operator reloads it).
    mqtt_broker_pid_file: Path | None = None
    # Largest floor-plan image accepted, bytes.
    floor_plan_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Largest bulk-import CSV accepted, bytes.
    import_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # The console's city map: a tile URL template ({z}/{x}/{y}, optionally {s}) of the base
    # map, e.g. the government network's own tile server; unset, the map draws boundaries and
    # markers on a blank ground. Its origin is added to the console's img-src.
    map_tile_url: str | None = Field(default=None, max_length=500,
                                     pattern=r"^https?://[^\s\"'<>]+\{z\}[^\s\"'<>]*$")
    map_attribution: str = Field(default="", max_length=300)
    # Largest organisation import (CSV or XLSX: a city's jurisdictions, units, sites...), bytes.
    org_import_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Live stream: keep-alive comment interval, seconds.
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    # Largest request body of every other route, bytes (api/limits.py): refused with 413
    # before it is parsed and before authentication.
    body_max_bytes: int = Field(default=64 * 1024, ge=1024)
    # argon2id computations at once (each takes api.security.ARGON2_MEMORY_KIB, 64 MiB);
    # further logins and password changes wait their turn.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    # Login throttling (api/throttle.py, in the memory of this API process): failed logins
    # within `login_window_s` per account and per client address before 429 + Retry-After.
    login_account_failures: int = Field(default=5, ge=1)
    login_address_failures: int = Field(default=20, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # Live stream: how often an open stream re-checks its user and credentials, seconds.
    stream_recheck_s: float = Field(default=5.0, gt=0)

    # Files (photos, PDFs) of hazards, work orders, patrols and public reports (hazards/files.py,
    # docs/hazards-files-and-reports.md). Largest file, bytes, and largest image, pixels.
    files_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    files_max_pixels: int = Field(default=40_000_000, ge=10_000)
    # Where contents go: "local" (files_dir, default <FIRETOWER_VAR_DIR or ./var>/files) or
    # "s3" (an S3-compatible service: MinIO, S3; credentials from boto3's own chain, e.g.
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never from Firetower's settings).
    files_backend: Literal["local", "s3"] = "local"
    files_dir: Path | None = None
    files_s3_endpoint: str | None = Field(default=None, max_length=500,
                                          pattern=r"^https?://[^\s\"'<>]+$")
    files_s3_bucket: str = Field(default="firetower-files", min_length=3, max_length=63)
    files_s3_region: str = Field(default="us-east-1", max_length=50)
    files_s3_prefix: str = Field(default="", max_length=100)
    # Public reports (api/routes/public.py): photos per report and bytes per photo; reports
    # per client address per hour (burst), new reports per minute from everyone, status
    # look-ups per address per minute, addresses remembered (a bounded table).
    public_report_max_photos: int = Field(default=3, ge=0, le=10)
    public_report_photo_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    public_reports_per_address_hour: float = Field(default=10.0, gt=0)
    public_report_burst: float = Field(default=3.0, ge=1)
    public_reports_per_minute: float = Field(default=30.0, gt=0)
    public_status_per_minute: float = Field(default=30.0, ge=1)
    public_throttle_addresses: int = Field(default=10_000, ge=1, le=1_000_000)
    # The duplicate rule (hazards/reports.py): same category within this many metres and
    # hours of an open report; a report this close to a site is matched to it.
    report_merge_radius_m: float = Field(default=200.0, ge=0, le=10_000)
    report_merge_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    report_site_match_m: float = Field(default=300.0, ge=0, le=10_000)

    @property
    def files_body_max_bytes(self) -> int:
        """A multipart upload's body: the file and its form around it (api/limits.py)."""
        return self.files_max_bytes + 64 * 1024

    @property
    def public_report_body_max_bytes(self) -> int:
        """A public report's body: its photos (base64 in JSON: 4 bytes for 3) and its text."""
        photos = self.public_report_max_photos * self.public_report_photo_max_bytes
        return photos * 4 // 3 + 64 * 1024
