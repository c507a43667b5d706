"""The WeChat API client and a fake WeChat server that speaks the same endpoints for dev and tests."""
