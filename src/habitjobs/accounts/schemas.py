"""API bodies for users, devices and data exports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from habitjobs.accounts.timezones import is_valid_zone
from habitjobs.bounds import SafeText


def _zone(value: str) -> str:
    if not is_valid_zone(value):
        raise ValueError(
            f"{value!r} is not an IANA timezone name (like 'Europe/Berlin' or 'America/New_York')"
        )
    return value


Timezone = Annotated[str, AfterValidator(_zone)]


class Body(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 instead of a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class MeOut(BaseModel):
    id: uuid.UUID
    email: str | None
    display_name: str | None
    timezone: str
    day_start_minutes: int
    week_start: int
    locale: str
    created_at: datetime


class MePatch(Body):
    display_name: Annotated[SafeText, Field(min_length=1, max_length=100)] | None = None
    timezone: Timezone | None = None
    day_start_minutes: Annotated[int, Field(ge=0, le=720)] | None = None
    week_start: Annotated[int, Field(ge=0, le=6)] | None = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] | None = None


class DevicePut(Body):
    platform: Literal["ios", "android"]
    provider: Literal["apns", "fcm"] | None = None
    push_token: Annotated[str, Field(min_length=8, max_length=4096, pattern=r"^[A-Za-z0-9_:\-.]+$")]
    apns_env: Literal["sandbox", "production"] | None = None
    app_version: Annotated[SafeText, Field(max_length=50)] | None = None

    @model_validator(mode="after")
    def _default_provider(self) -> DevicePut:
        if self.provider is None:
            self.provider = "apns" if self.platform == "ios" else "fcm"
        if self.provider == "apns" and self.platform != "ios":
            raise ValueError("provider 'apns' is only for platform 'ios'")
        if self.provider == "apns" and self.apns_env is None:
            self.apns_env = "production"
        return self


class DeviceOut(BaseModel):
    id: uuid.UUID
    platform: Literal["ios", "android"]
    provider: Literal["apns", "fcm"]
    push_token_tail: str
    apns_env: Literal["sandbox", "production"] | None
    app_version: str | None
    push_enabled: bool
    registered_at: datetime
    invalidated_at: datetime | None
    invalid_reason: str | None


class ExportAccepted(BaseModel):
    export_id: uuid.UUID
    job_id: str
    status: str
    status_url: str
    export_url: str


class ExportOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed", "expired"]
    job_id: str
    requested_at: datetime
    finished_at: datetime | None
    row_count: int | None
    document: dict[str, Any] | None
    size_bytes: int | None = None
    # Why the export failed (e.g. over the size limit), for the user.
    error: str | None = None
    # When the document is deleted; after that the export answers 410.
    expires_at: datetime | None = None


class IdentityOut(BaseModel):
    id: uuid.UUID
    issuer: str
    subject: str
    email: str | None
    created_at: datetime


class IdentityLink(Body):
    """An access token of another identity provider, obtained by the app for this same person."""

    token: Annotated[str, Field(min_length=1, max_length=16_384)]


class DeletionOut(BaseModel):
    id: uuid.UUID
    # scheduled (cancellable until not_before) | running | done | cancelled
    status: str
    job_id: str
    requested_at: datetime
    not_before: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    rows_deleted: int


class DeletionAccepted(BaseModel):
    deletion_id: uuid.UUID
    job_id: str
    status: str
    not_before: datetime
    status_url: str
