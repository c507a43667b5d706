"""WeChat server API client (httpx): code2session, phone numbers, access token, subscribe messages.

Network errors are retried with exponential backoff; WeChat's own error codes are not (an invalid
code stays invalid), except "system busy" (-1), which WeChat documents as transient, and for
subscribe messages the rate limit (45009). A message is never re-sent after a failure that may have
happened after WeChat received it (a read timeout): that raises `DeliveryUnknown` instead.

The access token comes from `cgi-bin/stable_token` (normal mode: every caller gets the same token
while it is valid, unlike `cgi-bin/token`, which invalidates the previous one) and is cached in the
process and in the database (`app/wechat/tokens.py`), so app instances share one token.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from app.core import clock
from app.core.config import Settings, get_settings
from app.kit.errors import BadRequest, DomainError, Unavailable, UpstreamError
from app.wechat.tokens import DbTokenStore, renew_margin

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
    45009: ("wechat_quota_reached", "微信接口调用超过限额，请稍后再试", "WeChat API quota reached, try again later", Unavailable),
}

# A stale token: refresh it and try once more.
TOKEN_ERRORS = frozenset({40001, 42001})
# Worth retrying after a pause: system busy, API rate limit reached.
TRANSIENT_ERRORS = frozenset({-1, 45009})


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


class DeliveryUnknown(Unavailable):
    """The request may have reached WeChat (the answer was lost): not retried, so never sent twice."""

    def __init__(self) -> None:
        super().__init__("wechat_delivery_unknown", "微信未答复，消息可能已发出", "WeChat did not answer; the message may have been sent")


@dataclass(frozen=True)
class WechatSession:
    openid: str
    unionid: str | None
    session_key: str


class WechatClient:
    def __init__(
        self, settings: Settings | None = None, transport: httpx.BaseTransport | None = None, token_store: DbTokenStore | None = None
    ):
        self.settings = settings or get_settings()
        self._store = token_store or DbTokenStore(self.settings.wechat_app_id)
        self._http = httpx.Client(
            base_url=self.settings.wechat_api_base,
            timeout=httpx.Timeout(self.settings.wechat_timeout_seconds, connect=2.0),
            transport=transport,
        )
        self._token: str | None = None
        self._token_renew_at: datetime | None = None
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------------

    def _pause(self, attempt: int) -> None:
        base = self.settings.wechat_backoff_seconds * (2**attempt)
        time.sleep(base * random.uniform(0.75, 1.25))

    def _call(
        self,
        method: str,
        path: str,
        *,
        retry_codes: frozenset[int] = frozenset({-1}),
        resend_unsure: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One API call with retries. `retry_codes`: WeChat errcodes worth another try after a pause.
        `resend_unsure=False`: a failure after the request may have arrived (read timeout, broken
        answer) raises DeliveryUnknown instead of sending again."""
        attempts = self.settings.wechat_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._http.request(method, path, **kwargs)
                resp.raise_for_status()
                data = resp.json()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.HTTPStatusError):
                # Never reached WeChat, or WeChat's front end refused it (5xx): safe to send again.
                if last:
                    raise Unavailable(
                        "wechat_unreachable", "暂时无法连接微信服务器，请稍后再试", "WeChat cannot be reached, try again later"
                    ) from None
                self._pause(attempt)
                continue
            except (httpx.TransportError, ValueError):
                if not resend_unsure:
                    raise DeliveryUnknown() from None
                if last:
                    raise Unavailable(
                        "wechat_unreachable", "暂时无法连接微信服务器，请稍后再试", "WeChat cannot be reached, try again later"
                    ) from None
                self._pause(attempt)
                continue
            errcode = int(data.get("errcode", 0) or 0)
            if errcode in retry_codes and not last:
                self._pause(attempt)
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

    def _fetch_token(self, force: bool) -> tuple[str, int]:
        data = self._call(
            "POST",
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.settings.wechat_app_id,
                "secret": self.settings.wechat_app_secret,
                "force_refresh": force,
            },
        )
        return data["access_token"], int(data.get("expires_in", 7200))

    def access_token(self, *, stale: str | None = None) -> str:
        """The shared token, renewed `wechat_token_margin_seconds` before it expires. `stale`: a
        token WeChat just refused; it is replaced (once, by whichever instance gets there first)."""
        margin = self.settings.wechat_token_margin_seconds
        with self._token_lock:
            now = clock.now()
            if stale is None and self._token and self._token_renew_at and now < self._token_renew_at:
                return self._token
            found = None if stale is not None else self._store.load(margin)
            if found is None:
                found = self._store.refresh(self._fetch_token, margin, stale)
            token, expires_at = found
            self._token = token
            self._token_renew_at = expires_at - renew_margin(margin, now, expires_at)
            return token

    def _with_token(self, path: str, body: dict[str, Any], **call: Any) -> dict[str, Any]:
        """POST with the access token; when WeChat says the token is stale, renew it and try again.
        A second renewal happens only when the first handed back a token another instance had
        stored, which WeChat then refused too (e.g. someone forced a new token elsewhere)."""
        token = self.access_token()
        for renewals in range(3):
            try:
                return self._call("POST", path, params={"access_token": token}, json=body, **call)
            except WechatError as e:
                if e.errcode not in TOKEN_ERRORS or renewals == 2:
                    raise
                token = self.access_token(stale=token)
        raise AssertionError("unreachable")

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
        self._with_token(
            "/cgi-bin/message/subscribe/send", body, retry_codes=TRANSIENT_ERRORS, resend_unsure=False
        )


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
