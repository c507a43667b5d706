"""WeChat server API client (httpx): code2session, phone numbers, access token, subscribe messages.

Network errors are retried; WeChat's own error codes are not (an invalid code stays invalid),
except "system busy" (-1), which WeChat documents as transient.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.config import Settings, get_settings
from app.kit.errors import BadRequest, DomainError, Unavailable, UpstreamError

# errcode → (our code, zh, en, error class)
_ERRORS: dict[int, tuple[str, str, str, type[DomainError]]] = {
    40029: ("wechat_invalid_code", "微信登录凭证无效或已使用，请重新登录", "Invalid or used WeChat code", BadRequest),
    40163: ("wechat_code_used", "微信登录凭证已被使用，请重新登录", "WeChat code already used", BadRequest),
    45011: ("wechat_rate_limited", "微信登录过于频繁，请稍后再试", "WeChat rate limit reached, try again later", Unavailable),
    40226: ("wechat_high_risk", "微信账号存在风险，登录被拦截", "WeChat blocked this high-risk user", BadRequest),
    -1: ("wechat_busy", "微信系统繁忙，请稍后再试", "WeChat is busy, try again later", Unavailable),
    40001: ("wechat_invalid_credential", "微信接口凭证无效", "Invalid WeChat access token", UpstreamError),
    42001: ("wechat_token_expired", "微信接口凭证已过期", "WeChat access token expired", UpstreamError),
    43101: ("wechat_not_subscribed", "用户未订阅该消息", "User has not subscribed to this message", BadRequest),
    47003: ("wechat_bad_template_data", "消息模板参数错误", "Invalid template data", BadRequest),
}


class WechatError(Exception):
    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def to_domain(self) -> DomainError:
        code, zh, en, cls = _ERRORS.get(
            self.errcode, ("wechat_error", "微信接口返回错误", "WeChat API error", UpstreamError)
        )
        return cls(code, zh, en, wechat_errcode=self.errcode)


@dataclass(frozen=True)
class WechatSession:
    openid: str
    unionid: str | None
    session_key: str


class WechatClient:
    def __init__(self, settings: Settings | None = None, transport: httpx.BaseTransport | None = None):
        self.settings = settings or get_settings()
        self._http = httpx.Client(
            base_url=self.settings.wechat_api_base,
            timeout=httpx.Timeout(self.settings.wechat_timeout_seconds, connect=2.0),
            transport=transport,
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, retry_busy: bool = True, **kwargs: Any) -> dict[str, Any]:
        attempts = self.settings.wechat_retries + 1
        delay = 0.1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._http.request(method, path, **kwargs)
                resp.raise_for_status()
                data = resp.json()
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError):
                if last:
                    raise Unavailable(
                        "wechat_unreachable", "暂时无法连接微信服务器，请稍后再试", "WeChat cannot be reached, try again later"
                    ) from None
                time.sleep(delay)
                delay *= 2
                continue
            errcode = int(data.get("errcode", 0) or 0)
            if errcode == -1 and retry_busy and not last:
                time.sleep(delay)
                delay *= 2
                continue
            if errcode != 0:
                raise WechatError(errcode, str(data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")

    # --- endpoints ------------------------------------------------------------------------------

    def code_to_session(self, code: str) -> WechatSession:
        """wx.login code → openid (auth.code2Session)."""
        data = self._call(
            "GET",
            "/sns/jscode2session",
            params={
                "appid": self.settings.wechat_app_id,
                "secret": self.settings.wechat_app_secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        return WechatSession(openid=data["openid"], unionid=data.get("unionid"), session_key=data.get("session_key", ""))

    def access_token(self, *, force: bool = False) -> str:
        """Cached; refreshed five minutes before it expires."""
        with self._token_lock:
            if not force and self._token and time.monotonic() < self._token_expires_at:
                return self._token
            data = self._call(
                "GET",
                "/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.settings.wechat_app_id,
                    "secret": self.settings.wechat_app_secret,
                },
            )
            self._token = data["access_token"]
            self._token_expires_at = time.monotonic() + max(60, int(data.get("expires_in", 7200)) - 300)
            return self._token

    def _with_token(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with the access token; one refresh-and-retry when WeChat says the token is stale."""
        try:
            return self._call("POST", path, params={"access_token": self.access_token()}, json=body)
        except WechatError as e:
            if e.errcode not in (40001, 42001):
                raise
            return self._call("POST", path, params={"access_token": self.access_token(force=True)}, json=body)

    def phone_number(self, code: str) -> str:
        """getPhoneNumber code → the user's pure phone number."""
        data = self._with_token("/wxa/business/getuserphonenumber", {"code": code})
        return data["phone_info"]["purePhoneNumber"]

    def send_subscribe_message(self, openid: str, template_id: str, data: dict[str, Any], page: str | None = None) -> None:
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: {"value": v} for k, v in data.items()},
        }
        if page:
            body["page"] = page
        self._with_token("/cgi-bin/message/subscribe/send", body)


_client: WechatClient | None = None
_client_lock = threading.Lock()


def get_wechat() -> WechatClient:
    global _client
    with _client_lock:
        if _client is None:
            _client = WechatClient()
        return _client


def reset_wechat() -> None:
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
