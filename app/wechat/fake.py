"""A fake WeChat server: real HTTP on loopback, the same endpoints and error codes as api.weixin.qq.com.

Conventions for development and tests:
- a `wx.login` code `code-<anything>` maps to openid `openid-<anything>`; the code `invalid` gives 40029,
  and a code can be used only once (40163 on reuse), as in WeChat;
- a phone code `phone-<11 digits>` yields that number;
- failures are injected with POST /_fake/fail {"path": "/sns/jscode2session", "errcode": 45011, "times": 1}
  (errcode 0 with "http_status": 500 gives a server error; "delay": seconds makes it slow);
- access tokens come from GET cgi-bin/token (each call ends the previous token five minutes later, as in WeChat)
  or POST cgi-bin/stable_token (normal mode returns the current token while it has more than five
  minutes left; force_refresh invalidates it); `token_ttl` sets their life, POST /_fake/expire-tokens
  ends them all (42001 afterwards);
- subscribe messages check their data like WeChat (47003 for an empty or over-long value) and answer
  43101 for users in `refused` (POST /_fake/refuse {"openid": ...}: the user has no subscription left);
- POST /_fake/reset clears state; GET /_fake/messages lists subscribe messages that were sent.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core import clock


def _now() -> float:
    """WeChat's clock is the application's (tests move it), as seconds."""
    return clock.now().timestamp()


class FakeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.used_codes: set[str] = set()
        self.tokens: dict[str, float] = {}
        self.stable_token: str | None = None
        self.refused: set[str] = set()
        self.failures: dict[str, list[dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.token_ttl = 7200

    def take_failure(self, path: str) -> dict[str, Any] | None:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            queue = self.failures.get(path)
            if queue:
                f = queue[0]
                f["times"] -= 1
                if f["times"] <= 0:
                    queue.pop(0)
                return f
        return None


def create_fake_app(app_id: str = "wx-demo-app", app_secret: str = "demo-secret") -> FastAPI:
    app = FastAPI(title="Fake WeChat API", docs_url=None, redoc_url=None, openapi_url=None)
    state = FakeState()
    app.state.fake = state

    def failure(path: str) -> JSONResponse | None:
        f = state.take_failure(path)
        if f is None:
            return None
        if f.get("delay"):
            time.sleep(float(f["delay"]))
        if f.get("http_status"):
            return JSONResponse({"errmsg": "server error"}, status_code=int(f["http_status"]))
        if f.get("errcode"):
            return JSONResponse({"errcode": int(f["errcode"]), "errmsg": f.get("errmsg", "injected failure")})
        return None

    def issue(now: float) -> str:
        value = secrets.token_urlsafe(24)
        state.tokens[value] = now + state.token_ttl
        return value

    def token_ok(token: str | None) -> JSONResponse | None:
        if not token or token not in state.tokens:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        if state.tokens[token] < _now():
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    @app.get("/sns/jscode2session")
    def jscode2session(appid: str = "", secret: str = "", js_code: str = "", grant_type: str = ""):
        if (f := failure("/sns/jscode2session")) is not None:
            return f
        if appid != app_id or secret != app_secret:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if not js_code.startswith("code-"):
            return {"errcode": 40029, "errmsg": "invalid code"}
        with state.lock:
            if js_code in state.used_codes:
                return {"errcode": 40163, "errmsg": "code been used"}
            state.used_codes.add(js_code)
        suffix = js_code[len("code-") :]
        # A code may carry the same user's several logins: code-<user>~<nonce>.
        user = suffix.split("~", 1)[0]
        return {
            "openid": f"openid-{user}",
            "unionid": f"unionid-{user}",
            "session_key": secrets.token_urlsafe(16),
        }

    @app.get("/cgi-bin/token")
    def token(grant_type: str = "", appid: str = "", secret: str = ""):
        if (f := failure("/cgi-bin/token")) is not None:
            return f
        if appid != app_id or secret != app_secret:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        with state.lock:
            # getAccessToken: a new token each call; the previous ones keep working five more minutes.
            now = _now()
            for k in [k for k in state.tokens if k != state.stable_token]:
                state.tokens[k] = min(state.tokens[k], now + 300)
            value = issue(now)
        return {"access_token": value, "expires_in": state.token_ttl}

    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request):
        if (f := failure("/cgi-bin/stable_token")) is not None:
            return f
        body = await request.json()
        if body.get("appid") != app_id or body.get("secret") != app_secret:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if body.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        now = _now()
        with state.lock:
            current = state.stable_token
            if body.get("force_refresh"):
                state.tokens.pop(current, None)  # forced: the previous token stops working at once
                current = None
            # Normal mode renews a token in its last five minutes; the old one lives out its time.
            if current is None or state.tokens.get(current, 0) - now <= 300:
                current = issue(now)
                state.stable_token = current
            left = max(1, int(state.tokens[current] - now))
        return {"access_token": current, "expires_in": left}

    @app.post("/wxa/business/getuserphonenumber")
    async def phone(request: Request, access_token: str = ""):
        if (f := failure("/wxa/business/getuserphonenumber")) is not None:
            return f
        if (bad := token_ok(access_token)) is not None:
            return bad
        body = await request.json()
        code = str(body.get("code", ""))
        if not code.startswith("phone-") or not code[6:].isdigit():
            return {"errcode": 40029, "errmsg": "invalid code"}
        number = code[6:]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": number,
                "purePhoneNumber": number,
                "countryCode": "86",
                "watermark": {"timestamp": int(_now()), "appid": app_id},
            },
        }

    @app.post("/cgi-bin/message/subscribe/send")
    async def subscribe_send(request: Request, access_token: str = ""):
        if (f := failure("/cgi-bin/message/subscribe/send")) is not None:
            return f
        if (bad := token_ok(access_token)) is not None:
            return bad
        body = await request.json()
        if not body.get("touser") or not body.get("template_id"):
            return {"errcode": 47003, "errmsg": "argument invalid!"}
        data = body.get("data")
        if not isinstance(data, dict) or not data:
            return {"errcode": 47003, "errmsg": "argument invalid! data is empty"}
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            limit = 20 if key.startswith("thing") else 32
            if not isinstance(value, str) or not value or len(value) > limit:
                return {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid"}
        with state.lock:
            if body["touser"] in state.refused:
                return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
            state.messages.append(body)
        return {"errcode": 0, "errmsg": "ok"}

    @app.post("/_fake/refuse")
    async def refuse(request: Request):
        body = await request.json()
        with state.lock:
            state.refused.add(str(body["openid"]))
        return {"ok": True}

    @app.post("/_fake/fail")
    async def inject(request: Request):
        f = await request.json()
        f.setdefault("times", 1)
        with state.lock:
            state.failures.setdefault(f["path"], []).append(f)
        return {"ok": True}

    @app.post("/_fake/expire-tokens")
    def expire_tokens():
        with state.lock:
            for k in state.tokens:
                state.tokens[k] = 0
        return {"ok": True}

    @app.post("/_fake/reset")
    def reset():
        with state.lock:
            state.reset()
        return {"ok": True}

    @app.get("/_fake/messages")
    def messages():
        return {"messages": state.messages, "calls": state.calls}

    return app


class FakeWechatServer:
    """Runs the fake app with uvicorn in a background thread (for tests and `jianfei fake-wechat`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any):
        import socket

        import uvicorn

        self.app = create_fake_app(**kwargs)
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeWechatServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake WeChat server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
