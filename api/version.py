"""The release this code is; /healthz and the OpenAPI document report it (see CHANGELOG.md)."""

__version__ = "0.2.0"
